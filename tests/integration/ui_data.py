"""A UI dataset written straight through ``store.write`` (shared by the UI's store and API tests).

A 300,000-point curve with one spike (written twice: a re-delivery that only a
merge would collapse), three overlaid runs under a parent, lists, rows, tables,
images, files, logs, statuses (one run lost, one failed), names that look like
SQL. :func:`ui_store` yields the UI's reads over it on chDB or on the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from clickhouse_driver import Client

from store import ChdbStore, ClickHouseStore, StoreQueries, run_view

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000
NOW_MS = T0 + 3_600_000
BIG_POINTS = 300_000
SPIKE_STEP = 123_457
HOSTILE = "lo'ss\\\"; DROP TABLE runs; --"
EXP = "exp 'one'"


class Rows:
    """Builds columnar batches; every event gets its own (writer_id, seq)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def write(self, table: str, rows: list[dict[str, Any]], *, twice: bool = False) -> None:
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        self.store.write(table, columns)
        if twice:  # a re-delivered batch: same identities, collapsed only by a later merge
            self.store.write(table, columns)

    def run(self, run_id: str, *, experiment: str = EXP, parent: str = "", name: str = "", start: int = T0,
            status: str | None = "Completed", error: str = "", end: int = T0 + 60_000) -> None:
        self.write("runs", [dict(run_id=run_id, experiment=experiment, parent_run_id=parent, display_name=name,
                                 kind="interactive", host="h", pid=1, start_ms=start, writer_id="w",
                                 seq=self.next_seq())])
        self.write("run_status", [dict(run_id=run_id, experiment=experiment, status="Running", error_details="",
                                       created_ms=start, writer_id="w", seq=self.next_seq())])
        if status is not None and status != "Running":
            self.write("run_status", [dict(run_id=run_id, experiment=experiment, status=status, error_details=error,
                                           created_ms=end, writer_id="w", seq=self.next_seq())])

    def names(self, run_id: str, kinds: dict[str, str], experiment: str = EXP) -> None:
        self.write("metric_names", [dict(run_id=run_id, experiment=experiment, name=n, kind=k, description="",
                                         first_ms=T0 + i) for i, (n, k) in enumerate(kinds.items())])

    def scalars(self, run_id: str, name: str, values: list[float], *, steps: list[int] | None = None,
                texts: dict[int, str] | None = None, twice: bool = False, experiment: str = EXP,
                chunk: int = 100_000) -> None:
        steps = steps if steps is not None else list(range(len(values)))
        for lo in range(0, len(values), chunk):
            seq = self.next_seq()
            rows = [dict(experiment=experiment, run_id=run_id, name=name, step=steps[i], time_ms=T0 + steps[i] * 1000,
                         value=values[i], text=(texts or {}).get(i, ""), is_text=int(i in (texts or {})),
                         writer_id="w", seq=seq, idx=i - lo, created_ms=T0)
                    for i in range(lo, min(lo + chunk, len(values)))]
            self.write("metric_scalars", rows, twice=twice)

    def table_rows(self, run_id: str, name: str, kind: str, rows: list[dict[str, float | str]]) -> None:
        seq = self.next_seq()
        self.write("metric_rows", [dict(
            run_id=run_id, experiment=EXP, name=name, kind=kind, created_ms=T0 + seq, writer_id="w", seq=seq,
            row_idx=i, col_names=list(r), col_numbers=[0.0 if isinstance(v, str) else float(v) for v in r.values()],
            col_texts=[v if isinstance(v, str) else "" for v in r.values()],
            col_is_text=[int(isinstance(v, str)) for v in r.values()]) for i, r in enumerate(rows)], twice=True)

    def file(self, run_id: str, path: str, data: bytes, *, created: int, chunk: int = 4,
             content_type: str = "text/plain") -> None:
        upload = f"u{self.next_seq()}"
        parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
        rows = [dict(run_id=run_id, experiment=EXP, path=path, upload_id=upload, chunk_index=i, chunk_count=len(parts),
                     total_size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type=content_type,
                     data=p, created_ms=created, writer_id="w", seq=self.next_seq()) for i, p in enumerate(parts)]
        self.write("run_files", rows[::-1])  # chunks arrive in any order


def fill(store: Any) -> None:
    w = Rows(store)
    # The big run: one spike among BIG_POINTS, written twice (a re-delivery).
    w.run("big", name="big one")
    w.names("big", {"loss": "scalar"})
    w.scalars("big", "loss", [100.0 if s == SPIKE_STEP else 1.0 + 0.1 * math.sin(s / 500) for s in range(BIG_POINTS)],
              twice=True)
    # Three runs overlaid; r2 starts later and is shorter, r3 never logs the metric.
    for i, (start, n) in enumerate([(T0, 1000), (T0 + 5000, 400), (T0, 0)]):
        run_id = f"r{i + 1}"
        w.run(run_id, name=f"run {i + 1}", start=start, parent="hd" if i < 2 else "")
        w.names(run_id, {"acc": "scalar"})
        if n:
            w.scalars(run_id, "acc", [0.5 + 0.4 * s / n + 0.01 * i for s in range(n)])
    w.run("hd", name="parent")
    # Special values: NaN, inf, text, a hostile name.
    w.run("odd", name="odd", status="Running", start=NOW_MS - 10_000, end=0)
    w.names("odd", {"mixed": "scalar", HOSTILE: "scalar", "note": "scalar", "single": "scalar"})
    w.scalars("odd", "mixed", [1.0, math.nan, 3.0, math.inf, 5.0, 0.0], texts={5: "five"})
    w.scalars("odd", HOSTILE, [1.0, 2.0, 3.0])
    w.scalars("odd", "note", [0.0], texts={0: "resnet 'x'"})
    w.scalars("odd", "single", [0.93])
    w.write("run_attributes", [
        dict(run_id="odd", experiment=EXP, kind="tag", key="team", value="old", has_value=1, created_ms=T0,
             writer_id="w", seq=w.next_seq()),
        dict(run_id="odd", experiment=EXP, kind="tag", key="team", value="vision", has_value=1, created_ms=T0 + 1,
             writer_id="w", seq=w.next_seq()),
        dict(run_id="odd", experiment=EXP, kind="tag", key="baseline", value="", has_value=0, created_ms=T0,
             writer_id="w", seq=w.next_seq()),
        dict(run_id="odd", experiment=EXP, kind="property", key="lr", value="0.01", has_value=1, created_ms=T0,
             writer_id="w", seq=w.next_seq()),
    ], twice=True)
    # Lost: "Running" with a last heartbeat an hour ago.
    w.run("lost", name="lost", status="Running")
    w.write("run_heartbeats", [dict(run_id="lost", experiment=EXP, created_ms=T0 + 1000, interval_ms=30_000)])
    w.run("failed", name="failed", status="Failed", error="ValueError: boom")
    # Lists (two calls), rows, a table, images, files, logs.
    w.names("odd", {"norms": "list", "lr_schedule": "row", "confusion": "table", "samples": "image"})
    w.table_rows("odd", "norms", "list", [{"norms": 0.9}, {"norms": 1.1}, {"norms": 1.3}])
    w.table_rows("odd", "norms", "list", [{"norms": 1.2}, {"norms": 0.8}])
    for epoch in range(20):
        w.table_rows("odd", "lr_schedule", "row", [{"epoch": epoch, "lr": 0.1 * 0.9 ** epoch}])
    w.table_rows("odd", "lr_schedule", "row", [{"epoch": "n/a", "lr": 5.0}])  # text x: skipped by the chart
    w.table_rows("odd", "confusion", "table", [{"label": "cat", "correct": 97}, {"label": "dog", "correct": 95}])
    for i in range(3):
        w.write("run_images", [dict(run_id="odd", experiment=EXP, name="samples", description=f"d{i}",
                                    file_path=f"images/samples/{i}.png", content_type="image/png", size=3,
                                    created_ms=T0 + i, writer_id="w", seq=w.next_seq())], twice=True)
        w.file("odd", f"images/samples/{i}.png", bytes([i]) * 3, created=T0 + i, content_type="image/png")
    w.file("odd", "outputs/model.txt", b"old weights", created=T0)
    w.file("odd", "outputs/model.txt", b"new weights, longer", created=T0 + 5)
    w.write("run_logs", [dict(run_id="odd", experiment=EXP, time_ms=T0 + i, stream="stdout", logger="", level=20,
                              message=f"line {i}", exc_text="", writer_id="w", seq=w.next_seq(), idx=0)
                         for i in range(run_view.LOG_LINES_CAP + 10)], twice=True)
    # Another experiment, to count.
    w.run("other", experiment="second", name="x")


@contextmanager
def ui_store(backend: str, tmp: Path, clickhouse_url: str | None = None) -> Iterator[Any]:
    """The UI's reads over the dataset, on ``backend`` (``chdb`` under ``tmp``, or ``clickhouse``)."""
    if backend == "chdb":
        s: Any = ChdbStore(tmp / "chdb")
        try:
            s.migrate()
            fill(s)
            yield StoreQueries(s)
        finally:
            s.close()
        return
    assert clickhouse_url is not None
    database = f"rs_ui_{hashlib.sha1(str(tmp).encode()).hexdigest()[:12]}"
    parts = urlsplit(clickhouse_url)
    s = ClickHouseStore.from_url(urlunsplit(parts._replace(path="/" + database)))
    try:
        s.migrate()
        fill(s)
        yield StoreQueries(s)
    finally:
        s.close()
        admin = Client.from_url(urlunsplit(parts._replace(path="/default")))
        try:
            admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            admin.disconnect()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def runstream_server(home: Path, *options: str) -> Iterator[str]:
    """``runstream server --home HOME [OPTIONS]`` on a free port (it owns the home and ingests its spool, or
    reads ``--clickhouse``); its URL. It must stop cleanly (exit 0) on SIGTERM."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    server = subprocess.Popen([sys.executable, "-m", "runstream", "server", "--home", str(home), "--port", str(port),
                               *options],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runstream server did not start: {server.communicate()[1][-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            _, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
        assert server.returncode == 0, err[-3000:]
