"""The embedded home's query socket under attack: a real `runstream ingest` owning real chDB,
and a hostile process of the same user talking to its socket.

Each attack of issue 15 is refused with a clear error: SQL text (multi-statements,
``file()``, ``INTO OUTFILE``, ``SETTINGS readonly=0``), values that try to become
SQL, a 512 MiB frame, unbounded connections. The engine enforces read-only and a
time limit on the readers' own connection too. Ingest goes on while a client
hammers the socket (what that costs it in time is for the benchmarks to say).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from consumers.testing import wait_until
from runstream.testing import IngestProcess
from schemas import RunStarted, RunStatusChanged, ScalarBatch
from schemas.spool import SpoolWriter, list_segments
from store import ChdbStore
from store.errors import StoreError
from store.home import query_address
from store.query_socket import QueryClient, SocketLimits

_LEN = struct.Struct(">I")
LIMITS = SocketLimits()
VICTIM_POINTS = 20_000


def _write_spool(spool: Path, run: str, batches: int, points: int = 1000) -> None:
    writer = SpoolWriter(spool, f"w_{run}", segment_bytes=4 * 1024 * 1024)
    env = lambda seq: dict(writer_id=f"w_{run}", seq=seq, run_id=run, experiment="attack", created_ms=seq)  # noqa: E731
    writer.append(run.encode(), schemas.encode(RunStarted(**env(1))))
    for b in range(batches):
        steps = list(range(b * points, (b + 1) * points))
        writer.append(run.encode(), schemas.encode(ScalarBatch(
            **env(2 + b), names=["loss"], descriptions=[""], name_idx=[0] * points, steps=steps, times_ms=steps,
            values=[float(s) for s in steps])))
    writer.append(run.encode(), schemas.encode(RunStatusChanged(**env(2 + batches), status="Completed")))
    writer.close()


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestProcess, Path]]:
    """`runstream ingest` owning a home whose chDB holds one run (20,000 points)."""
    home = tmp_path_factory.mktemp("attacked") / "home"
    _write_spool(home / "spool", "victim", batches=20)
    process = IngestProcess(["--home", str(home)], home.parent / "ingest.log").start()
    try:
        client = QueryClient(query_address(home), timeout_s=60)
        wait_until(lambda: client.ping() is not None, timeout_s=60, what="the owner's query socket")
        assert client.sync(60.0)
        yield process, home
    finally:
        process.kill()


def _raw(home: Path, payload: bytes, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """Send bytes as they are and read one reply frame."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(query_address(home))
        sock.sendall(payload)
        (n,) = _LEN.unpack(_read(sock, _LEN.size))
        reply = json.loads(_read(sock, n))
        assert isinstance(reply, dict)
        return reply


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _request(home: Path, request: Any) -> dict[str, Any]:
    body = json.dumps(request).encode()
    return _raw(home, _LEN.pack(len(body)) + body)


def _proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def _points(home: Path) -> int:
    rows = QueryClient(query_address(home), timeout_s=120).fetch(
        "scalars", {"experiment": "attack", "run": "victim", "names": ["loss"]})
    return len(rows)


ATTACKS = [
    "SELECT 1; INSERT INTO runstream.metric_scalars (run_id) VALUES ('forged')",
    "SELECT 1; DROP TABLE runstream.metric_scalars",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT 42 INTO OUTFILE '/tmp/runstream-attack'",
    "SELECT 1 SETTINGS readonly = 0",
]


@pytest.mark.parametrize("sql", ATTACKS)
def test_sql_text_is_refused_whatever_it_says(owner: tuple[IngestProcess, Path], sql: str) -> None:
    _, home = owner
    for request in ({"sql": sql, "params": {}}, {"op": "query", "sql": sql}, {"op": "fetch", "sql": sql}):
        reply = _request(home, request)
        assert reply["error"].startswith("refused:"), reply
    reply = _request(home, {"op": "fetch", "query": sql, "params": {}})
    assert "unknown read query" in reply["error"] and "never SQL text" in reply["error"]
    assert _points(home) == VICTIM_POINTS and not Path("/tmp/runstream-attack").exists()


def test_values_stay_values(owner: tuple[IngestProcess, Path]) -> None:
    _, home = owner
    client = QueryClient(query_address(home), timeout_s=30)
    for value in ("victim' OR 1=1 --", "x'); DROP TABLE runstream.metric_scalars; --", "\\'; SELECT 1"):
        assert client.fetch("logs", {"run": value}) == []
    assert _points(home) == VICTIM_POINTS


@pytest.mark.parametrize(("params", "message"), [
    ({"run": "victim", "db": "system"}, "takes exactly the parameters"),
    ({}, "takes exactly the parameters"),
    ({"run": 1}, "must be a String"),
    ({"run": ["victim"]}, "must be a String"),
    ({"run": "x" * (LIMITS.max_string_bytes + 1)}, "must be a String"),
])
def test_parameters_must_match_the_query(owner: tuple[IngestProcess, Path], params: dict[str, Any],
                                         message: str) -> None:
    _, home = owner
    reply = _request(home, {"op": "fetch", "query": "logs", "params": params})
    assert message in reply["error"]


def test_a_512_mib_frame_is_refused_from_its_length(owner: tuple[IngestProcess, Path]) -> None:
    process, home = owner
    before = _proc_status(process.proc.pid)
    reply = _raw(home, _LEN.pack(512 * 1024 * 1024) + b"{" * 65536)
    assert "over the limit of 65536" in reply["error"]
    assert _proc_status(process.proc.pid)["VmRSS"] - before["VmRSS"] < 64 * 1024  # KiB: nothing was buffered


def test_not_json_is_refused(owner: tuple[IngestProcess, Path]) -> None:
    _, home = owner
    assert "JSON object" in _raw(home, _LEN.pack(5) + b"\xff\xfe{{{")["error"]
    assert "JSON object" in _request(home, ["fetch", "logs"])["error"]


def test_connections_cannot_pile_up_threads(owner: tuple[IngestProcess, Path]) -> None:
    """200 connections that never send: 4 hold a slot until their 5 s are up, the rest hear `busy` at
    once (or, past the accept queue, cannot even connect); the owner gains at most 4 threads."""
    process, home = owner
    threads_before = _proc_status(process.proc.pid)["Threads"]
    idle: list[socket.socket] = []
    turned_away = 0
    try:
        for _ in range(200):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(query_address(home))
            except BlockingIOError:  # the accept queue (128) is full
                sock.close()
                turned_away += 1
                continue
            idle.append(sock)
        threads_during = _proc_status(process.proc.pid)["Threads"]
        busy = 0
        for sock in idle[LIMITS.max_clients:]:
            (n,) = _LEN.unpack(_read(sock, _LEN.size))
            busy += json.loads(_read(sock, n))["error"] == "busy"
        assert busy + turned_away == 200 - LIMITS.max_clients
        for sock in idle[:LIMITS.max_clients]:  # the slow ones are dropped after request_timeout_s...
            sock.settimeout(LIMITS.request_timeout_s * 12)
            with pytest.raises(ConnectionError):  # ...by the server: a client-side timeout (TimeoutError) fails
                _read(sock, 1)
    finally:
        for sock in idle:
            sock.close()
    assert threads_during <= threads_before + LIMITS.max_clients
    # A patient reader is served once the slots free up.
    assert _points(home) == VICTIM_POINTS


def test_the_readers_connection_is_read_only_and_time_limited(tmp_path: Path) -> None:
    """Defence in depth: even SQL that got through would meet the engine's read-only, time-limited reader."""
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.migrate()
        reader = store.open_reader(time_limit_s=1.0)
        for sql in ("INSERT INTO {db}.runs (run_id) VALUES ('forged')", "DROP TABLE {db}.runs",
                    "SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT 1 SETTINGS readonly = 0"):
            with pytest.raises(StoreError) as caught:
                reader.query(sql)
            assert caught.value.code == 164, caught.value  # READONLY
        with pytest.raises(StoreError) as caught:
            reader.query("SELECT sleep(3)")
        assert caught.value.code == 159  # TIMEOUT_EXCEEDED: the engine's time limit stopped it
        # Meanwhile the store itself still writes, without waiting for the reader.
        store.write("runs", {"run_id": ["r"], "experiment": ["e"], "parent_run_id": [""], "display_name": [""],
                             "kind": [""], "host": [""], "pid": [0], "start_ms": [0], "writer_id": ["w"], "seq": [1]})
        assert reader.query("SELECT count() FROM {db}.runs") == [(1,)]
        reader.close()
    finally:
        store.close()


def test_ingest_goes_on_while_a_client_hammers_the_socket(owner: tuple[IngestProcess, Path]) -> None:
    """The owner ingests a new run's segments while 8 threads keep asking it for a whole run.

    What it costs ingest in time is not asserted here (speed belongs in bench/);
    that ingest finishes, while reads are answered and the surplus is turned
    away, is.
    """
    _, home = owner
    stop = threading.Event()
    replies = {"busy": 0, "encoded": 0, "other": 0}
    request = json.dumps({"op": "fetch", "query": "scalars",
                          "params": {"experiment": "attack", "run": "victim", "names": ["loss"]}}).encode()

    def hammer() -> None:
        """As fast as it can: connect, ask for the whole run, read the reply unparsed, again."""
        while not stop.is_set():
            try:
                reply = _raw(home, _LEN.pack(len(request)) + request, timeout_s=60)
            except OSError:  # refused at connect (the accept queue is full), or dropped
                continue
            key = "busy" if reply.get("error") == "busy" else "encoded" if "encoded" in reply else "other"
            replies[key] += 1

    hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for thread in hammers:
        thread.start()
    try:
        wait_until(lambda: replies["encoded"] + replies["busy"] > 0, timeout_s=60, what="the hammering to start")
        _write_spool(home / "spool", "hammered", batches=50)  # 50,000 points
        wait_until(lambda: not list_segments(home / "spool"), timeout_s=300, interval_s=0.05,
                   what="ingest of the hammered run")
        answered_while_ingesting = dict(replies)
    finally:
        stop.set()
        for thread in hammers:
            thread.join(timeout=120)
    assert answered_while_ingesting["encoded"] > 0 and answered_while_ingesting["busy"] > 0
    assert replies["other"] == 0
