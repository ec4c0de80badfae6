"""Reading runs back in Azure ML's shapes: the questions behind ``Run.get_metrics()`` and friends.

:class:`RunReader` asks its questions by name (:mod:`store.queries`) through a
``connect`` callable that opens one :class:`~store.queries.ReadQueries` per
read: a ClickHouse server connection, a store this process holds, or the
embedded home's query socket. It never runs DDL, so a read-only ClickHouse
user can read.

- ``get_metrics``: a name logged once -> the value; several times -> a list in
  step order; ``log_list`` -> the list (several calls: a list of lists);
  ``log_row`` / ``log_table`` -> a dict of column lists; an image -> a
  reference string ``runstream://<run_id>/<file path>`` (several: a list),
  which ``download_file`` accepts.
- ``get_status``: "Running", "Completed", "Failed", "Canceled". A run still
  "Running" whose heartbeats stopped for ``heartbeat_lost_s`` (default 300 s, or
  three of the run's heartbeat intervals if longer) reads as "Failed" with a
  "process lost" error. Computed at read time; nothing is written.
- Read-your-writes (:meth:`RunReader.wait_visible`): a writer passes its
  ``writer_id`` and last ``seq``; the reader waits until ``writer_progress``
  shows that seq processed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager

from schemas.backoff import Backoff
from schemas.records import LogLine

from .errors import NotVisible, RunNotFound, StoreError
from .queries import ReadQueries

__all__ = ["RunReader", "RunRecord", "IMAGE_REF_PREFIX"]

IMAGE_REF_PREFIX = "runstream://"
"""Images read back as ``runstream://<run_id>/<file path>``."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as ``runs`` holds it."""

    run_id: str
    experiment: str
    parent_run_id: str | None
    display_name: str | None
    kind: str
    host: str
    pid: int
    start_ms: int
    status: str = "Running"
    """As :meth:`RunReader.get_status` reads it ("process lost" applied)."""


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


class RunReader:
    """Reads runs back through ``connect`` (see the module docstring for the shapes).

    Every error a read raises leaves from inside a ``with connect()`` block, so
    ``connect`` may translate them (the SDK turns them into its own errors).
    """

    def __init__(self, connect: Callable[[], ContextManager[ReadQueries]], *, heartbeat_lost_s: float = 300.0,
                 visible_timeout_s: float = 30.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._heartbeat_lost_s = heartbeat_lost_s
        self._visible_timeout_s = visible_timeout_s
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._experiments: dict[str, str] = {}

    @classmethod
    def over(cls, queries: ReadQueries, **options: Any) -> RunReader:
        """A reader over one :class:`ReadQueries` that stays open (a store this process holds)."""
        return cls(lambda: contextlib.nullcontext(queries), **options)

    def queries(self) -> ContextManager[ReadQueries]:
        """The read queries for one read (a ``with`` block): for callers with queries of their own
        in :data:`~store.queries.READ_QUERIES`, such as the notebook widget's (the UI's)."""
        return self._connect()

    def _fetch(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        with self._connect() as q:
            return q.fetch(name, params)

    # -- read-your-writes ----------------------------------------------------------------------

    def visible_seq(self, run_id: str, writer_id: str) -> int:
        """The highest seq of ``writer_id`` for ``run_id`` that ingest has processed (0: none)."""
        with self._connect() as q:
            return self._visible_seq(q, run_id, writer_id)

    @staticmethod
    def _visible_seq(q: ReadQueries, run_id: str, writer_id: str) -> int:
        rows = q.fetch("writer_progress", {"run": run_id, "writer": writer_id})
        return int(rows[0][0] or 0) if rows else 0

    def wait_visible(self, run_id: str, writer_id: str, seq: int, timeout: float | None = None) -> None:
        """Wait until event ``seq`` of ``writer_id`` for ``run_id`` (and all before it) is visible.

        Raises :class:`~store.errors.NotVisible` after ``timeout`` (default ``visible_timeout_s``).
        """
        if seq <= 0:
            return
        timeout = self._visible_timeout_s if timeout is None else timeout
        deadline = self._monotonic() + timeout
        backoff = Backoff(initial_s=0.02, max_s=0.5)
        with self._connect() as q:
            while True:
                seen = self._visible_seq(q, run_id, writer_id)
                if seen >= seq:
                    return
                if self._monotonic() >= deadline:
                    raise NotVisible(f"events of run {run_id!r} did not become visible within {timeout:.0f}s "
                                     f"(seen up to seq {seen} of {seq})", seen=seen)
                self._sleep(backoff.next_delay())

    def wait_settled(self, run_id: str, timeout: float | None = None) -> None:
        """For an ended run: wait until everything its ending writer sent up to the end is visible.

        The status row can be visible a moment before the rest of the batch it came in (tables are
        written one after another), so a reader of a finished run's logs waits for the writer's
        progress to reach the status event. A run with no final status event returns at once.
        """
        with self._connect() as q:
            rows = q.fetch("final_status_event", {"run": run_id})
        if rows:
            writer_id, seq = rows[0]
            self.wait_visible(run_id, str(writer_id), int(seq), timeout)

    # -- runs ----------------------------------------------------------------------------------

    @staticmethod
    def _record(row: Sequence[Any], status: str = "Running") -> RunRecord:
        return RunRecord(run_id=row[0], experiment=row[1], parent_run_id=row[2] or None, display_name=row[3] or None,
                         kind=row[4], host=row[5], pid=int(row[6]), start_ms=int(row[7]), status=status)

    def get_runs(self, experiment: str) -> list[RunRecord]:
        """Every run of ``experiment``, newest first, with its status."""
        with self._connect() as q:
            runs = q.fetch("runs_of_experiment", {"experiment": experiment})
            statuses = {r[0]: r[1:] for r in q.fetch("statuses_of_experiment", {"experiment": experiment})}
            beats = {r[0]: r[1:] for r in q.fetch("heartbeats_of_experiment", {"experiment": experiment})}
        out = []
        for row in runs:
            st = statuses.get(row[0])
            status = "Running"
            if st is not None:
                beat = beats.get(row[0])
                status = self._apply_lost(st[0], st[1] or None, int(st[2]),
                                          int(beat[0]) if beat else None, int(beat[1]) if beat else 0)[0]
            out.append(self._record(row, status))
        return out

    def get_run(self, experiment: str, run_id: str) -> RunRecord:
        """One run, with its status; raises :class:`RunNotFound`."""
        with self._connect() as q:
            rows = [r for r in q.fetch("run", {"run": run_id}) if r[1] == experiment]
            if not rows:
                raise RunNotFound(f"no run {run_id!r} in experiment {experiment!r}")
            return self._record(rows[0], self._status(q, run_id)[0])

    # -- status and details --------------------------------------------------------------------

    def _status(self, q: ReadQueries, run_id: str) -> tuple[str, str | None, int | None, int | None]:
        """(status, error details, end ms, last heartbeat ms); "process lost" applied."""
        rows = q.fetch("status", {"run": run_id})
        if not rows:
            raise RunNotFound(f"no run {run_id!r}")
        status, details, created = rows[0][0], rows[0][1] or None, int(rows[0][2])
        hb = q.fetch("heartbeat", {"run": run_id})
        last_beat = int(hb[0][0] or 0) if hb and int(hb[0][2] or 0) else None
        interval_ms = int(hb[0][1] or 0) if last_beat else 0
        return self._apply_lost(status, details, created, last_beat, interval_ms)

    def _apply_lost(self, status: str, details: str | None, created: int, last_beat: int | None,
                    interval_ms: int) -> tuple[str, str | None, int | None, int | None]:
        """A "Running" run silent for too long reads "Failed" (process lost)."""
        if status != "Running":
            return status, details, created, last_beat
        lost_after_ms = max(self._heartbeat_lost_s * 1000, 3 * interval_ms)
        last_sign = max(last_beat or 0, created)
        now_ms = self._clock() * 1000
        if now_ms - last_sign > lost_after_ms:
            ago = (now_ms - last_sign) / 1000
            return ("Failed", f"process lost: no heartbeat since {_iso(last_sign)} ({ago:.0f}s ago, limit "
                              f"{lost_after_ms / 1000:.0f}s); the run's process died without ending the run",
                    None, last_beat)
        return status, None, None, last_beat

    def get_status(self, run_id: str) -> str:
        """"Running", "Completed", "Failed" or "Canceled" (a silent "Running" run reads "Failed")."""
        with self._connect() as q:
            return self._status(q, run_id)[0]

    def _attributes(self, q: ReadQueries, run_id: str, kind: str) -> dict[str, str]:
        rows = q.fetch("attributes", {"run": run_id, "kind": kind})
        # Valueless tags read as "" like Azure ML's.
        return {key: value if int(has_value) else "" for key, value, has_value in rows}

    def get_tags(self, run_id: str) -> dict[str, str]:
        """Tags, latest value per key."""
        return self._query_attrs(run_id, "tag")

    def get_properties(self, run_id: str) -> dict[str, str]:
        """Properties, latest value per key."""
        return self._query_attrs(run_id, "property")

    def _query_attrs(self, run_id: str, kind: str) -> dict[str, str]:
        with self._connect() as q:
            return self._attributes(q, run_id, kind)

    def get_details(self, run_id: str) -> dict[str, Any]:
        """Azure-ML-like details: ids, times (ISO UTC), status, error, tags, properties, host, pid."""
        with self._connect() as q:
            runs = q.fetch("run", {"run": run_id})
            if not runs:
                raise RunNotFound(f"no run {run_id!r}")
            run = self._record(runs[0])
            status, details, end_ms, last_beat = self._status(q, run_id)
            error = None
            if status == "Failed":
                code = "ProcessLost" if details and details.startswith("process lost") else "UserError"
                error = {"code": code, "message": details or ""}
            elif status == "Canceled" and details:
                error = {"code": "Canceled", "message": details}  # why it was stopped (a sweep's policy, ...)
            return {
                "runId": run.run_id,
                "experiment": run.experiment,
                "displayName": run.display_name,
                "parentRunId": run.parent_run_id,
                "kind": run.kind,
                "status": status,
                "startTimeUtc": _iso(run.start_ms),
                "endTimeUtc": _iso(end_ms),
                "lastHeartbeatUtc": _iso(last_beat),
                "error": error,
                "tags": self._attributes(q, run_id, "tag"),
                "properties": self._attributes(q, run_id, "property"),
                "host": run.host,
                "pid": run.pid,
            }

    def get_rejections(self, run_id: str) -> list[dict[str, Any]]:
        """Why items of this run were not ingested (reason, detail, where), oldest first."""
        rows = self._fetch("rejections", run=run_id)
        keys = ("reason", "detail", "event_type", "source", "source_offset", "item", "created_ms")
        return [dict(zip(keys, r)) for r in rows]

    # -- metrics -------------------------------------------------------------------------------

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        """Every metric of the run (or only ``name``) in Azure ML's shapes."""
        with self._connect() as q:
            names = q.fetch("metric_names", {"run": run_id})
            if name is not None:
                names = [n for n in names if n[0] == name]
            if not names:
                return {}
            by_kind: dict[str, list[str]] = {}
            for n, kind, _first in names:
                by_kind.setdefault(kind, []).append(n)
            out: dict[str, Any] = {}
            if "scalar" in by_kind:
                experiment = self._experiment_of(q, run_id)
                series: dict[str, list[Any]] = {}
                for n, _step, _t, value, text, is_text in q.fetch(
                        "scalars", {"run": run_id, "experiment": experiment, "names": by_kind["scalar"]}):
                    series.setdefault(n, []).append(text if int(is_text) else _float(value))
                for n, values in series.items():
                    out[n] = values[0] if len(values) == 1 else values
            table_names = by_kind.get("list", []) + by_kind.get("row", []) + by_kind.get("table", [])
            if table_names:
                out.update(self._tables(q.fetch("metric_rows", {"run": run_id, "names": table_names})))
            if "image" in by_kind:
                refs: dict[str, list[str]] = {}
                for n, path in q.fetch("images", {"run": run_id, "names": by_kind["image"]}):
                    refs.setdefault(n, []).append(f"{IMAGE_REF_PREFIX}{run_id}/{path}")
                for n, values in refs.items():
                    out[n] = values[0] if len(values) == 1 else values
            # Keep the order names were first logged in.
            return {n: out[n] for n, _k, _f in names if n in out}

    def get_metric_series(self, experiment: str, run_ids: Sequence[str], name: str) -> dict[str, list[float]]:
        """Scalar metric ``name`` of many runs of ``experiment`` at once: run id -> numeric values in step order
        (text values left out; runs without it absent). What a sweep's early-termination policy reads."""
        if not run_ids:
            return {}
        out: dict[str, list[float]] = {}
        with self._connect() as q:
            for run_id, value, is_text in q.fetch("metric_series", {"experiment": experiment, "name": name,
                                                                     "runs": list(run_ids)}):
                if not int(is_text):
                    out.setdefault(run_id, []).append(_float(value))
        return out

    def _experiment_of(self, q: ReadQueries, run_id: str) -> str:
        experiment = self._experiments.get(run_id)
        if experiment is None:
            rows = q.fetch("experiment_of_run", {"run": run_id})
            experiment = rows[0][0] if rows and rows[0][0] else ""
            self._experiments[run_id] = experiment
        return experiment

    @staticmethod
    def _tables(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        lists: dict[str, list[list[Any]]] = {}
        tables: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        call: dict[str, tuple[Any, Any, Any]] = {}
        for n, kind, created, writer, seq, _row_idx, col_names, numbers, texts, is_text in rows:
            cells = [t if int(flag) else _float(v) for v, t, flag in zip(numbers, texts, is_text)]
            if kind == "list":
                ident = (created, writer, seq)
                if call.get(n) != ident:
                    call[n] = ident
                    lists.setdefault(n, []).append([])
                lists[n][-1].append(cells[0])
                continue
            columns, records = tables.setdefault(n, ([], []))
            for c in col_names:
                if c not in columns:
                    columns.append(c)
            records.append(dict(zip(col_names, cells)))
        out: dict[str, Any] = {n: calls[0] if len(calls) == 1 else calls for n, calls in lists.items()}
        for n, (columns, records) in tables.items():
            out[n] = {c: [r.get(c) for r in records] for c in columns}
        return out

    # -- files and logs ------------------------------------------------------------------------

    def get_file_names(self, run_id: str) -> list[str]:
        """Paths of every file uploaded to the run (images included)."""
        return [r[0] for r in self._fetch("file_names", run=run_id)]

    def download_file(self, run_id: str, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Path:
        """Reassemble the latest complete upload of ``name`` (a path or an image reference), verify its sha256.

        ``output_file_path`` defaults to the file's base name in the working
        directory; a directory receives the base name inside it.
        """
        if name.startswith(IMAGE_REF_PREFIX):
            ref_run, _, name = name[len(IMAGE_REF_PREFIX):].partition("/")
            run_id = ref_run or run_id
        with self._connect() as q:
            uploads = q.fetch("file_uploads", {"run": run_id, "path": name})
            if not uploads:
                raise StoreError(f"run {run_id!r} has no file {name!r}", retriable=False)
            complete = [u for u in uploads if int(u[3]) == int(u[2])]
            if not complete:
                raise StoreError(f"file {name!r} of run {run_id!r} is still being uploaded")
            chunks = q.fetch("file_chunks", {"run": run_id, "path": name, "upload": complete[0][0]})
            data = b"".join(bytes.fromhex(c[4]) for c in chunks)
            total, digest = int(chunks[0][2]), chunks[0][3]
            if len(data) != total or hashlib.sha256(data).hexdigest() != digest:
                raise StoreError(f"file {name!r} of run {run_id!r} is corrupt: {len(data)} of {total} bytes, "
                                 "sha256 mismatch", retriable=False)
        target = Path(output_file_path) if output_file_path is not None else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target

    def get_logs(self, run_id: str) -> list[LogLine]:
        """Captured output and logging records, in time order."""
        return [LogLine(int(t), stream, logger, int(level), message, exc or None)
                for t, stream, logger, level, message, exc in self._fetch("logs", run=run_id)]
