"""The store against the real engines: the ClickHouse server of the local stack (18.16) and chDB.

Every test runs on both: migrations, every table written and read back, the
dedup rule, hostile strings as data, special floats and large strings, error
classes. chDB-only tests at the end: one process per data directory, one
store per process, streamed inserts split at any byte.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from clickhouse_driver import Client

from store.errors import StoreError
from store import ChdbStore, ClickHouseStore, StoreBusy, open_store
from store import chdb as chdb_module
from store.base import TABLES
from store.migrations import load_migrations

HOSTILE = [
    "'", '"', "\\", "\\'", "'); DROP TABLE x; --", "\x00", "a\x00b", "😀𝄞", "\\N", "\t\n\r", "{db}", "{x:String}",
    "%(x)s", "%s %", "$db ${db}", "`", "\u2028\u2029", "é" * 3, "",
]
"""Strings that break SQL, escaping or parameter syntax if they were ever formatted into query text."""

ROW0_TEXT = "hostile ' \" \\ '); DROP TABLE x; -- \x00 😀𝄞 \\N\t\n"

SAMPLES: dict[str, list[Any]] = {
    "Int64": [-(2**63), 2**63 - 1],
    "UInt64": [0, 2**64 - 1],
    "UInt32": [0, 2**32 - 1],
    "Int32": [-(2**31), 2**31 - 1],
    "UInt8": [0, 255],
    "Float64": [-1.5e308, 5e-324],
    "Array(String)": [[ROW0_TEXT, ""], []],
    "Array(Float64)": [[1.5, -0.0, 1e-300], []],
    "Array(UInt8)": [[0, 255, 1], []],
}


def sample_batch(table: str) -> dict[str, list[Any]]:
    """Two rows with the extremes of every column type (different sorting keys)."""
    out: dict[str, list[Any]] = {}
    for column, typ in TABLES[table].items():
        if typ == "String":
            out[column] = [b"\xff\x00\xfe" + column.encode(), b"\x80"] if column == "data" else [f"{ROW0_TEXT}|{column}", ""]
        else:
            out[column] = list(SAMPLES[typ])
    return out


def rows_of(batch: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    return sorted(zip(*batch.values()), key=repr)


def scalar_batch(writer: str, seq: int, names: list[str], *, steps: list[int] | None = None,
                 values: list[float] | None = None, texts: list[str] | None = None) -> dict[str, list[Any]]:
    n = len(names)
    steps = steps if steps is not None else list(range(n))
    return {
        "experiment": ["exp"] * n, "run_id": ["run"] * n, "name": names, "step": steps,
        "time_ms": [1_700_000_000_000 + s for s in steps], "value": values if values is not None else [0.5] * n,
        "text": texts if texts is not None else [""] * n, "is_text": [0 if texts is None else 1] * n,
        "writer_id": [writer] * n, "seq": [seq] * n, "idx": list(range(n)), "created_ms": [1_700_000_000_000] * n,
    }


@pytest.fixture(params=["clickhouse", "chdb", "chdb-rowbinary"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store: the stack's server in a database of this test's own (dropped after), or chDB in tmp
    (inserting Native blocks, or RowBinary rows)."""
    if request.param.startswith("chdb"):
        fmt = "RowBinary" if request.param == "chdb-rowbinary" else "Native"
        s = ChdbStore(tmp_path / "chdb", database="runstream", insert_format=fmt)
        try:
            s.migrate()
            yield s
        finally:
            s.close()
        return
    url = request.getfixturevalue("clickhouse_url")
    database = request.getfixturevalue("unique_name")
    parts = urlsplit(url)
    s = ClickHouseStore.from_url(urlunsplit(parts._replace(path="/" + database)))
    try:
        s.migrate()
        yield s
    finally:
        s.close()
        admin = Client.from_url(urlunsplit(parts._replace(path="/default")))
        try:
            admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            admin.disconnect()


def test_migrations_apply_cleanly_and_twice(store: Any) -> None:
    versions = [m.version for m in load_migrations()]
    assert store.migrate() == []  # the fixture applied them all
    assert store.migrate() == []
    assert store.query("SELECT DISTINCT version FROM {db}.schema_migrations ORDER BY version") == [
        (v,) for v in versions]
    ((name, server_version),) = store.query("SELECT name, server_version FROM {db}.schema_migrations FINAL "
                                            "WHERE version = 1")
    assert name == "initial" and server_version == store.server_version


def test_tables_have_exactly_the_logical_schema(store: Any) -> None:
    # No ORDER BY: 18.16's system.columns has no `position`, but lists each table's columns in order.
    rows = store.query("SELECT table, name, type, default_kind FROM system.columns WHERE database = {d:String}",
                       {"d": store.database})
    found: dict[str, dict[str, str]] = {}
    materialized = set()
    for table, name, typ, default_kind in rows:
        if default_kind == "MATERIALIZED":
            materialized.add((table, name))
            continue
        if typ.startswith("LowCardinality("):
            typ = typ[len("LowCardinality("):-1]
        found.setdefault(table, {})[name] = typ
    assert set(found) == set(TABLES)
    for table, cols in TABLES.items():
        assert list(found[table].items()) == list(cols.items()), table
    assert materialized == {("metric_scalars", "time")}
    modern = not store.server_version.startswith("18.")
    ((time_type,),) = store.query("SELECT type FROM system.columns WHERE database = {d:String} "
                                  "AND table = 'metric_scalars' AND name = 'time'", {"d": store.database})
    assert time_type == ("DateTime64(3)" if modern else "DateTime")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_round_trips(store: Any, table: str) -> None:
    batch = sample_batch(table)
    if table == "schema_migrations":
        batch["version"] = [1000, 2**32 - 1]  # keep clear of the real version 1
    store.write(table, batch)
    columns = ", ".join(TABLES[table])
    got = store.query(f"SELECT {columns} FROM {{db}}.{table} FINAL WHERE " + (
        "version >= 1000" if table == "schema_migrations" else "1"))
    assert sorted(got, key=repr) == rows_of(batch)


def test_hostile_strings_are_data_in_inserts_and_parameters(store: Any) -> None:
    store.write("metric_scalars", scalar_batch("w", 1, HOSTILE, texts=HOSTILE))
    for i, text in enumerate(HOSTILE):
        got = store.query("SELECT name, text, step FROM {db}.metric_scalars WHERE experiment = {e:String} "
                          "AND run_id = {r:String} AND name = {n:String} AND text = {t:String}",
                          {"e": "exp", "r": "run", "n": text, "t": text})
        assert got == [(text, text, i)], repr(text)
    got = store.query("SELECT name FROM {db}.metric_scalars WHERE has({ns:Array(String)}, name) ORDER BY step",
                      {"ns": HOSTILE})
    assert [r[0] for r in got] == HOSTILE
    assert store.query("SELECT {a:String}, {b:Array(String)}", {"a": "'); DROP TABLE x; --", "b": HOSTILE}) == [
        ("'); DROP TABLE x; --", HOSTILE)]
    assert store.query("SELECT count() FROM {db}.metric_scalars") == [(len(HOSTILE),)]


def test_special_floats_empty_unicode_and_large_strings(store: Any) -> None:
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    big = "ü" * (1 << 19)  # 1 MiB of UTF-8
    texts = ["", "\x00", "日本語😀", big, "x" * (1 << 20), "\x00" * 1000]
    store.write("metric_scalars", scalar_batch("w", 1, [f"n{i}" for i in range(6)], values=values, texts=texts))
    got = store.query("SELECT value, text, length(text) FROM {db}.metric_scalars ORDER BY step")
    assert math.isnan(got[0][0])
    assert [r[0] for r in got[1:]] == values[1:]
    assert math.copysign(1.0, got[3][0]) == -1.0
    assert [r[1] for r in got] == texts
    assert [r[2] for r in got] == [len(t.encode()) for t in texts]
    got = store.query("SELECT count() FROM {db}.metric_scalars WHERE isNaN(value) OR value = {v:Float64}",
                      {"v": -math.inf})
    assert got == [(2,)]


def test_redelivered_rows_collapse_two_writers_stay(store: Any) -> None:
    names = ["loss", "loss", "acc"]
    first = scalar_batch("writer-a", 7, names, steps=[1, 2, 1])
    store.write("metric_scalars", first)
    store.write("metric_scalars", first)  # the same message delivered again
    store.write("metric_scalars", scalar_batch("writer-b", 7, names, steps=[1, 2, 1]))  # another rank, same steps
    final = store.query("SELECT writer_id, name, step FROM {db}.metric_scalars FINAL ORDER BY writer_id, name, step")
    assert final == [("writer-a", "acc", 1), ("writer-a", "loss", 1), ("writer-a", "loss", 2),
                     ("writer-b", "acc", 1), ("writer-b", "loss", 1), ("writer-b", "loss", 2)]
    by_identity = store.query("SELECT count() FROM (SELECT name FROM {db}.metric_scalars "
                              "LIMIT 1 BY writer_id, seq, idx)")
    assert by_identity == [(6,)]
    per_step = store.query("SELECT step, count() FROM {db}.metric_scalars FINAL WHERE name = {n:String} "
                           "GROUP BY step ORDER BY step", {"n": "loss"})
    assert per_step == [(1, 2), (2, 2)]
    store.query("OPTIMIZE TABLE {db}.metric_scalars FINAL")
    assert store.query("SELECT count() FROM {db}.metric_scalars") == [(6,)]


@pytest.mark.parametrize("table", sorted(set(TABLES) - {"schema_migrations"}))
def test_every_table_collapses_a_redelivered_batch(store: Any, table: str) -> None:
    batch = sample_batch(table)
    store.write(table, batch)
    store.write(table, batch)
    assert store.query(f"SELECT count() FROM {{db}}.{table} FINAL") == [(2,)]


def test_versioned_tables_keep_the_newest(store: Any) -> None:
    progress = {"writer_id": ["w"], "run_id": ["r"], "experiment": ["e"], "updated_ms": [1]}
    store.write("writer_progress", {**progress, "seq": [5]})
    store.write("writer_progress", {**progress, "seq": [3]})  # an older batch flushed late
    assert store.query("SELECT seq FROM {db}.writer_progress FINAL WHERE run_id = {r:String}", {"r": "r"}) == [(5,)]
    assert store.query("SELECT max(seq) FROM {db}.writer_progress WHERE run_id = {r:String} "
                       "AND writer_id = {w:String}", {"r": "r", "w": "w"}) == [(5,)]
    beat = {"run_id": ["r"], "experiment": ["e"], "interval_ms": [1000]}
    store.write("run_heartbeats", {**beat, "created_ms": [200]})
    store.write("run_heartbeats", {**beat, "created_ms": [100]})
    assert store.query("SELECT created_ms FROM {db}.run_heartbeats FINAL") == [(200,)]


def test_refused_statements_are_not_retriable(store: Any) -> None:
    with pytest.raises(StoreError) as info:
        store.query("SELEC 1")
    assert info.value.retriable is False
    with pytest.raises(StoreError) as info:
        store.query("SELECT * FROM {db}.no_such_table")
    assert info.value.retriable is False
    with pytest.raises(StoreError) as info:
        store.write("metric_scalars", {**scalar_batch("w", 1, ["a"]), "step": ["not a number"]})
    assert info.value.retriable is False
    with pytest.raises(StoreError) as info:
        store.write("metric_scalars", {**scalar_batch("w", 1, ["a"]), "seq": [-1]})
    assert info.value.retriable is False
    store.write("metric_scalars", scalar_batch("w", 1, ["still works"]))
    assert store.query("SELECT name FROM {db}.metric_scalars") == [("still works",)]


def test_unreachable_server_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = ClickHouseStore.from_url(f"clickhouse://127.0.0.1:{port}/runstream?connect_timeout=2")
    try:
        with pytest.raises(StoreError) as info:
            s.migrate()
        assert info.value.retriable is True
    finally:
        s.close()


def test_open_store_picks_the_backend(clickhouse_url: str, tmp_path: Path) -> None:
    server = open_store(clickhouse_url, tmp_path)
    try:
        assert isinstance(server, ClickHouseStore)
        assert server.database == (urlsplit(clickhouse_url).path.strip("/") or "runstream")
    finally:
        server.close()
    embedded = open_store(None, tmp_path)
    try:
        assert isinstance(embedded, ChdbStore) and embedded.path == (tmp_path / "chdb").resolve()
        assert embedded.database == "runstream"
    finally:
        embedded.close()


# -- chDB only ----------------------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from store import ChdbStore
    store = ChdbStore(sys.argv[1])
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    store.close()
""")


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_chdb_directory_is_held_by_one_process(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    proc = _holder(path, 120)
    try:
        with pytest.raises(StoreBusy) as info:
            ChdbStore(path)
        assert info.value.holder_pid == proc.pid
        assert f"pid {proc.pid}" in str(info.value) and info.value.retriable
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    with ChdbStore(path) as store:  # SIGKILL released the lock
        assert store.query("SELECT 1") == [(1,)]


def test_chdb_waits_a_bounded_time_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    proc = _holder(path, 1.0)
    try:
        with ChdbStore(path, lock_timeout_s=60) as store:  # opens once the holder lets go (it would raise)
            assert store.query("SELECT 1") == [(1,)]
    finally:
        proc.communicate(timeout=60)


def test_one_chdb_store_per_process(tmp_path: Path) -> None:
    with ChdbStore(tmp_path / "a") as first:
        for other in (tmp_path / "a", tmp_path / "b"):
            with pytest.raises(StoreBusy, match="already has chDB open"):
                ChdbStore(other)
        assert first.query("SELECT 1") == [(1,)]
    with ChdbStore(tmp_path / "b") as second:  # a closed store frees the engine for another path
        assert second.query("SELECT 1") == [(1,)]
    with ChdbStore(tmp_path / "a") as again:
        assert again.query("SELECT 1") == [(1,)]


@pytest.mark.parametrize("fmt", chdb_module.INSERT_FORMATS)
def test_chdb_insert_split_at_any_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(chdb_module, "_INSERT_CHUNK", 7)
    with ChdbStore(tmp_path / "chdb", insert_format=fmt) as store:
        store.migrate()
        texts = ["x" * 100_000, "", "😀" * 10, "\x00\x01"]
        store.write("metric_scalars", scalar_batch("w", 1, ["a", "b", "c", "d"], texts=texts))
        assert store.query("SELECT text FROM {db}.metric_scalars ORDER BY step") == [(t,) for t in texts]


def test_closed_chdb_store_refuses_calls(tmp_path: Path) -> None:
    store = ChdbStore(tmp_path / "chdb")
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.query("SELECT 1")
    with ChdbStore(tmp_path / "chdb") as again:  # the lock went with close()
        assert again.query("SELECT 1") == [(1,)]


def test_forked_child_does_not_inherit_the_chdb_store(tmp_path: Path) -> None:
    with ChdbStore(tmp_path / "chdb") as store:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 0
            try:
                try:
                    store.query("SELECT 1")
                    code = 1  # the parent's engine must not be usable here
                except StoreError:
                    pass
                try:
                    ChdbStore(tmp_path / "chdb")
                    code = 2  # the parent still holds the directory
                except StoreBusy as exc:
                    code = 0 if exc.holder_pid == os.getppid() else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.query("SELECT 1") == [(1,)]  # the child's exit released nothing of ours
