"""Reading runs back: the queries behind ``Run.get_metrics()`` and friends.

:class:`RunReader` answers with Azure ML's shapes, from ClickHouse (a server)
or chDB (embedded, under ``$RUNSTREAM_HOME/chdb``):

- ``get_metrics``: a name logged once -> the value; several times -> a list in
  step order; ``log_list`` -> the list (several calls: a list of lists);
  ``log_row`` / ``log_table`` -> a dict of column lists; an image -> a
  reference string ``runstream://<run_id>/<file path>`` (several: a list),
  which ``download_file`` accepts.
- ``get_status``: "Running", "Completed", "Failed", "Canceled". A run still
  "Running" whose heartbeats stopped for ``heartbeat_lost_s`` (default 300 s, or
  three of the run's heartbeat intervals if longer) reads as "Failed" with a
  "process lost" error. Computed at read time; nothing is written.

Every query deduplicates (``LIMIT 1 BY`` the message identity, or aggregates
duplicates cannot change), so re-delivered messages never double a value
before ClickHouse merges them.

**Read-your-writes** (:meth:`RunReader.wait_visible`): the SDK flushes its
emitter and passes its ``writer_id`` and last ``seq``; the reader waits until
``writer_progress`` shows that seq processed (bounded by ``visible_timeout_s``).

**Who owns chDB** (embedded mode; chDB runs inside one process at a time): the
home's ``owner.lock`` (:mod:`consumers.ownership`) decides.

- A running ``runstream ingest`` holds it and answers queries on a local socket;
  the reader sends its queries there.
- Nobody holds it: the reader takes it for the duration of one read, ingests
  whatever the spool holds (so a lone script sees what it logged without any
  server or daemon), queries chDB directly, and lets go.
- Another reader holds it: reads are short, the reader waits (``lock_wait_s``).

In Kafka mode events become visible only when a ``runstream ingest`` consumes
them; if they do not within ``visible_timeout_s``, :class:`IngestNotRunning`
says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from schemas.limits import RunLimits
from schemas.records import LogLine

from .errors import IngestNotRunning, ReadError, RunNotFound

__all__ = ["ReadSettings", "RunRecord", "RunReader", "IMAGE_REF_PREFIX"]

log = logging.getLogger("runstream")

IMAGE_REF_PREFIX = "runstream://"
"""Images read back as ``runstream://<run_id>/<file path>``."""


class _Runner(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadSettings:
    """Where and how to read. ``kafka``/``clickhouse`` None = the embedded defaults under ``home``."""

    home: Path
    kafka: str | None = None
    clickhouse: str | None = None
    visible_timeout_s: float = 30.0
    """How long a read waits for the caller's own events to become visible."""
    heartbeat_lost_s: float = 300.0
    lock_wait_s: float = 60.0
    """Embedded: how long to wait for another reader to release chDB."""
    limits: RunLimits | None = None
    """Limits applied when this reader ingests the spool itself; None = ``<home>/limits.json`` or the defaults."""

    def __post_init__(self) -> None:
        for name in ("visible_timeout_s", "heartbeat_lost_s", "lock_wait_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")

    @classmethod
    def from_workspace(cls, workspace: Any, **overrides: Any) -> ReadSettings:
        """From a ``producers.Workspace`` (or anything with ``home``, ``kafka``, ``clickhouse``)."""
        if isinstance(workspace, ReadSettings):
            return workspace if not overrides else cls(**{**_asdict(workspace), **overrides})
        values: dict[str, Any] = {
            "home": Path(getattr(workspace, "home")),
            "kafka": getattr(workspace, "kafka", None),
            "clickhouse": getattr(workspace, "clickhouse", None),
        }
        for name in ("visible_timeout_s", "heartbeat_lost_s", "lock_wait_s", "limits"):
            if getattr(workspace, name, None) is not None:
                values[name] = getattr(workspace, name)
        values.update(overrides)
        return cls(**values)


def _asdict(s: ReadSettings) -> dict[str, Any]:
    return {name: getattr(s, name) for name in ReadSettings.__slots__}


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


# -- queries (fixed text; every user value is a parameter) -----------------------------------------

_Q_RUN = (
    "SELECT run_id, experiment, any(parent_run_id), any(display_name), any(kind), any(host), any(pid), "
    "min(start_ms) FROM {db}.runs WHERE run_id = {run:String} GROUP BY run_id, experiment"
)
_Q_RUNS = (
    "SELECT run_id, experiment, any(parent_run_id), any(display_name), any(kind), any(host), any(pid), "
    "min(start_ms) AS s FROM {db}.runs WHERE experiment = {experiment:String} GROUP BY run_id, experiment "
    "ORDER BY s DESC, run_id DESC"
)
_Q_STATUSES = (
    "SELECT run_id, status, error_details, created_ms FROM {db}.run_status WHERE experiment = {experiment:String} "
    "ORDER BY run_id, created_ms DESC, seq DESC LIMIT 1 BY run_id"
)
_Q_HEARTBEATS = (
    "SELECT run_id, max(created_ms), max(interval_ms) FROM {db}.run_heartbeats "
    "WHERE experiment = {experiment:String} GROUP BY run_id"
)
_Q_STATUS = (
    "SELECT status, error_details, created_ms FROM {db}.run_status WHERE run_id = {run:String} "
    "ORDER BY created_ms DESC, seq DESC LIMIT 1"
)
_Q_FINAL_STATUS_EVENT = (
    "SELECT writer_id, seq FROM {db}.run_status WHERE run_id = {run:String} AND status != 'Running' "
    "ORDER BY created_ms DESC, seq DESC LIMIT 1"
)
_Q_HEARTBEAT = (
    "SELECT max(created_ms), max(interval_ms), count() FROM {db}.run_heartbeats WHERE run_id = {run:String}"
)
_Q_ATTRIBUTES = (
    "SELECT key, argMax(value, created_ms), argMax(has_value, created_ms) FROM {db}.run_attributes "
    "WHERE run_id = {run:String} AND kind = {kind:String} GROUP BY key ORDER BY key"
)
_Q_NAMES = (
    "SELECT name, any(kind), min(first_ms) AS f FROM {db}.metric_names WHERE run_id = {run:String} "
    "GROUP BY name ORDER BY f, name"
)
_Q_EXPERIMENT = "SELECT any(experiment) FROM {db}.metric_names WHERE run_id = {run:String}"
_Q_SCALARS = (
    "SELECT name, step, time_ms, value, text, is_text FROM {db}.metric_scalars "
    "WHERE experiment = {experiment:String} AND run_id = {run:String} AND has({names:Array(String)}, name) "
    "ORDER BY name, step, time_ms, writer_id, seq, idx LIMIT 1 BY name, writer_id, seq, idx"
)
_Q_ROWS = (
    "SELECT name, kind, created_ms, writer_id, seq, row_idx, col_names, col_numbers, col_texts, col_is_text "
    "FROM {db}.metric_rows WHERE run_id = {run:String} AND has({names:Array(String)}, name) "
    "ORDER BY name, created_ms, writer_id, seq, row_idx LIMIT 1 BY name, created_ms, writer_id, seq, row_idx"
)
_Q_IMAGES = (
    "SELECT name, file_path FROM {db}.run_images WHERE run_id = {run:String} AND has({names:Array(String)}, name) "
    "ORDER BY name, created_ms, writer_id, seq LIMIT 1 BY name, created_ms, writer_id, seq"
)
_Q_FILES = "SELECT DISTINCT path FROM {db}.run_files WHERE run_id = {run:String} ORDER BY path"
_Q_UPLOADS = (
    "SELECT upload_id, max(created_ms) AS c, any(chunk_count), uniqExact(chunk_index) FROM {db}.run_files "
    "WHERE run_id = {run:String} AND path = {path:String} GROUP BY upload_id ORDER BY c DESC, upload_id DESC"
)
_Q_CHUNKS = (
    "SELECT chunk_index, chunk_count, total_size, sha256, hex(data) FROM {db}.run_files "
    "WHERE run_id = {run:String} AND path = {path:String} AND upload_id = {upload:String} "
    "ORDER BY chunk_index LIMIT 1 BY chunk_index"
)
_Q_LOGS = (
    "SELECT time_ms, stream, logger, level, message, exc_text FROM {db}.run_logs WHERE run_id = {run:String} "
    "ORDER BY time_ms, writer_id, seq, idx LIMIT 1 BY writer_id, seq, idx"
)
_Q_PROGRESS = (
    "SELECT max(seq) FROM {db}.writer_progress WHERE run_id = {run:String} AND writer_id = {writer:String}"
)
_Q_REJECTED = (
    "SELECT reason, detail, event_type, source, source_offset, item, created_ms FROM {db}.rejected_events "
    "WHERE run_id = {run:String} ORDER BY created_ms, source, source_offset, item "
    "LIMIT 1 BY reason, source, source_offset, item"
)


class RunReader:
    """Reads runs back (see the module docstring for shapes, read-your-writes and chDB ownership)."""

    def __init__(self, workspace_settings: Any, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 **overrides: Any) -> None:
        self.settings = ReadSettings.from_workspace(workspace_settings, **overrides)
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._migrated = False
        self._experiments: dict[str, str] = {}

    # -- backends ------------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing stays open between reads; kept so a reader can be used as a context manager."""

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _limits(self) -> RunLimits:
        if self.settings.limits is not None:
            return self.settings.limits
        path = self.settings.home / "limits.json"
        return RunLimits.from_file(path) if path.exists() else RunLimits()

    def _drain(self, store: Any) -> None:
        from consumers.service import drain_spool

        spool = self.settings.home / "spool"
        if not spool.is_dir():
            return
        deadline = self._monotonic() + self.settings.visible_timeout_s
        if not drain_spool(store, self.settings.home, limits=self._limits(), deadline=deadline):
            log.warning("runstream: could not ingest the whole spool in %.0fs", self.settings.visible_timeout_s)

    @contextlib.contextmanager
    def _runner(self) -> Iterator[_Runner]:
        """A query runner for one read; in embedded setups also ingests the spool first when free to."""
        s = self.settings
        if s.clickhouse is not None:
            # One connection per read: nothing to leak when a Run object is dropped.
            from consumers.store import open_store

            try:
                server = open_store(s.clickhouse, s.home)
            except Exception as exc:
                raise ReadError(f"cannot reach ClickHouse at {s.clickhouse}: {exc}") from exc
            try:
                if not self._migrated:
                    try:
                        server.migrate()
                    except Exception as exc:
                        raise ReadError(f"cannot prepare the runstream tables at {s.clickhouse}: {exc}") from exc
                    self._migrated = True
                if s.kafka is None:
                    # Spool -> server: ingest the spool ourselves unless a `runstream ingest` owns it.
                    from consumers.ownership import HomeLock

                    lock = HomeLock(s.home)
                    if lock.try_acquire("reader"):
                        try:
                            self._drain(server)
                        finally:
                            lock.release()
                yield _ServerErrors(server)
            finally:
                server.close()
            return
        yield from self._embedded()

    def _embedded(self) -> Iterator[_Runner]:
        from consumers.ownership import HomeLock
        from consumers.query_server import QueryClient, QueryServerUnavailable

        s = self.settings
        lock = HomeLock(s.home)
        deadline = self._monotonic() + s.lock_wait_s
        announced = False
        while True:
            if lock.try_acquire("reader"):
                break
            holder = lock.holder() or {}
            address = holder.get("query_address")
            if holder.get("role") == "ingest" and address:
                client = QueryClient(address)
                if client.ping():
                    yield _ServerErrors(client)
                    return
            if self._monotonic() >= deadline:
                raise ReadError(f"{s.home} is busy (pid {holder.get('pid', '?')}, {holder.get('role', '?')}) "
                                f"and did not free up in {s.lock_wait_s:.0f}s")
            if not announced:
                log.info("runstream: waiting for pid %s (%s) to finish with %s", holder.get("pid", "?"),
                         holder.get("role", "?"), s.home)
                announced = True
            self._sleep(0.05)
        try:
            from consumers.store import open_store

            try:
                store = open_store(None, s.home)
                store.migrate()
            except Exception as exc:
                raise ReadError(f"cannot open chDB under {s.home}: {exc}") from exc
            try:
                if s.kafka is None:
                    self._drain(store)
                yield _ServerErrors(store)
            finally:
                store.close()
        finally:
            lock.release()

    def _query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self._runner() as runner:
            return runner.query(sql, params)

    # -- read-your-writes ----------------------------------------------------------------------

    def visible_seq(self, run_id: str, writer_id: str) -> int:
        """The highest seq of ``writer_id`` for ``run_id`` that ingest has processed (0: none)."""
        rows = self._query(_Q_PROGRESS, run=run_id, writer=writer_id)
        return int(rows[0][0] or 0) if rows else 0

    def wait_visible(self, run_id: str, writer_id: str, seq: int, timeout: float | None = None) -> None:
        """Wait until event ``seq`` of ``writer_id`` for ``run_id`` (and all before it) is visible.

        Raises :class:`IngestNotRunning` (Kafka mode) or :class:`ReadError` after ``timeout``
        (default ``visible_timeout_s``).
        """
        if seq <= 0:
            return
        timeout = self.settings.visible_timeout_s if timeout is None else timeout
        deadline = self._monotonic() + timeout
        delay = 0.02
        while True:
            seen = self.visible_seq(run_id, writer_id)
            if seen >= seq:
                return
            if self._monotonic() >= deadline:
                break
            self._sleep(delay)
            delay = min(delay * 2, 0.5)
        if self.settings.kafka is not None:
            raise IngestNotRunning(
                f"events of run {run_id!r} sent to Kafka ({self.settings.kafka}) were not ingested within "
                f"{timeout:.0f}s (seen up to seq {seen} of {seq}). Is `runstream ingest` running? "
                "Start it with: runstream ingest --kafka <bootstrap>"
                + (f" --clickhouse {self.settings.clickhouse}" if self.settings.clickhouse else ""))
        raise ReadError(f"events of run {run_id!r} in the spool did not become visible within {timeout:.0f}s "
                        f"(seen up to seq {seen} of {seq})")

    def wait_settled(self, run_id: str, timeout: float | None = None) -> None:
        """For an ended run: wait until everything its ending writer sent up to the end is visible.

        The status row can be visible a moment before the rest of the batch it came in (tables are
        written one after another), so a reader of a finished run's logs waits for the writer's
        progress to reach the status event. A run with no final status event returns at once.
        """
        with self._runner() as runner:
            rows = runner.query(_Q_FINAL_STATUS_EVENT, {"run": run_id})
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
        with self._runner() as runner:
            runs = runner.query(_Q_RUNS, {"experiment": experiment})
            statuses = {r[0]: r[1:] for r in runner.query(_Q_STATUSES, {"experiment": experiment})}
            beats = {r[0]: r[1:] for r in runner.query(_Q_HEARTBEATS, {"experiment": experiment})}
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
        with self._runner() as runner:
            rows = [r for r in runner.query(_Q_RUN, {"run": run_id}) if r[1] == experiment]
            if not rows:
                raise RunNotFound(f"no run {run_id!r} in experiment {experiment!r}")
            return self._record(rows[0], self._status(runner, run_id)[0])

    # -- status and details --------------------------------------------------------------------

    def _status(self, runner: _Runner, run_id: str) -> tuple[str, str | None, int | None, int | None]:
        """(status, error details, end ms, last heartbeat ms); "process lost" applied."""
        rows = runner.query(_Q_STATUS, {"run": run_id})
        if not rows:
            raise RunNotFound(f"no run {run_id!r}")
        status, details, created = rows[0][0], rows[0][1] or None, int(rows[0][2])
        hb = runner.query(_Q_HEARTBEAT, {"run": run_id})
        last_beat = int(hb[0][0] or 0) if hb and int(hb[0][2] or 0) else None
        interval_ms = int(hb[0][1] or 0) if last_beat else 0
        return self._apply_lost(status, details, created, last_beat, interval_ms)

    def _apply_lost(self, status: str, details: str | None, created: int, last_beat: int | None,
                    interval_ms: int) -> tuple[str, str | None, int | None, int | None]:
        """A "Running" run silent for too long reads "Failed" (process lost)."""
        if status != "Running":
            return status, details, created, last_beat
        lost_after_ms = max(self.settings.heartbeat_lost_s * 1000, 3 * interval_ms)
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
        with self._runner() as runner:
            return self._status(runner, run_id)[0]

    def _attributes(self, runner: _Runner, run_id: str, kind: str) -> dict[str, str]:
        rows = runner.query(_Q_ATTRIBUTES, {"run": run_id, "kind": kind})
        # Valueless tags read as "" like Azure ML's.
        return {key: value if int(has_value) else "" for key, value, has_value in rows}

    def get_tags(self, run_id: str) -> dict[str, str]:
        """Tags, latest value per key."""
        return self._query_attrs(run_id, "tag")

    def get_properties(self, run_id: str) -> dict[str, str]:
        """Properties, latest value per key."""
        return self._query_attrs(run_id, "property")

    def _query_attrs(self, run_id: str, kind: str) -> dict[str, str]:
        with self._runner() as runner:
            return self._attributes(runner, run_id, kind)

    def get_details(self, run_id: str) -> dict[str, Any]:
        """Azure-ML-like details: ids, times (ISO UTC), status, error, tags, properties, host, pid."""
        with self._runner() as runner:
            runs = runner.query(_Q_RUN, {"run": run_id})
            if not runs:
                raise RunNotFound(f"no run {run_id!r}")
            run = self._record(runs[0])
            status, details, end_ms, last_beat = self._status(runner, run_id)
            error = None
            if status == "Failed":
                code = "ProcessLost" if details and details.startswith("process lost") else "UserError"
                error = {"code": code, "message": details or ""}
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
                "tags": self._attributes(runner, run_id, "tag"),
                "properties": self._attributes(runner, run_id, "property"),
                "host": run.host,
                "pid": run.pid,
            }

    def get_rejections(self, run_id: str) -> list[dict[str, Any]]:
        """Why items of this run were not ingested (reason, detail, where), oldest first."""
        rows = self._query(_Q_REJECTED, run=run_id)
        keys = ("reason", "detail", "event_type", "source", "source_offset", "item", "created_ms")
        return [dict(zip(keys, r)) for r in rows]

    # -- metrics -------------------------------------------------------------------------------

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        """Every metric of the run (or only ``name``) in Azure ML's shapes."""
        with self._runner() as runner:
            names = runner.query(_Q_NAMES, {"run": run_id})
            if name is not None:
                names = [n for n in names if n[0] == name]
            if not names:
                return {}
            by_kind: dict[str, list[str]] = {}
            for n, kind, _first in names:
                by_kind.setdefault(kind, []).append(n)
            out: dict[str, Any] = {}
            if "scalar" in by_kind:
                experiment = self._experiment_of(runner, run_id)
                series: dict[str, list[Any]] = {}
                for n, _step, _t, value, text, is_text in runner.query(
                        _Q_SCALARS, {"run": run_id, "experiment": experiment, "names": by_kind["scalar"]}):
                    series.setdefault(n, []).append(text if int(is_text) else _float(value))
                for n, values in series.items():
                    out[n] = values[0] if len(values) == 1 else values
            table_names = by_kind.get("list", []) + by_kind.get("row", []) + by_kind.get("table", [])
            if table_names:
                out.update(self._tables(runner.query(_Q_ROWS, {"run": run_id, "names": table_names})))
            if "image" in by_kind:
                refs: dict[str, list[str]] = {}
                for n, path in runner.query(_Q_IMAGES, {"run": run_id, "names": by_kind["image"]}):
                    refs.setdefault(n, []).append(f"{IMAGE_REF_PREFIX}{run_id}/{path}")
                for n, values in refs.items():
                    out[n] = values[0] if len(values) == 1 else values
            # Keep the order names were first logged in.
            return {n: out[n] for n, _k, _f in names if n in out}

    def _experiment_of(self, runner: _Runner, run_id: str) -> str:
        experiment = self._experiments.get(run_id)
        if experiment is None:
            rows = runner.query(_Q_EXPERIMENT, {"run": run_id})
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
        return [r[0] for r in self._query(_Q_FILES, run=run_id)]

    def download_file(self, run_id: str, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Path:
        """Reassemble the latest complete upload of ``name`` (a path or an image reference), verify its sha256.

        ``output_file_path`` defaults to the file's base name in the working
        directory; a directory receives the base name inside it.
        """
        if name.startswith(IMAGE_REF_PREFIX):
            ref_run, _, name = name[len(IMAGE_REF_PREFIX):].partition("/")
            run_id = ref_run or run_id
        with self._runner() as runner:
            uploads = runner.query(_Q_UPLOADS, {"run": run_id, "path": name})
            if not uploads:
                raise ReadError(f"run {run_id!r} has no file {name!r}")
            complete = [u for u in uploads if int(u[3]) == int(u[2])]
            if not complete:
                raise ReadError(f"file {name!r} of run {run_id!r} is still being uploaded")
            chunks = runner.query(_Q_CHUNKS, {"run": run_id, "path": name, "upload": complete[0][0]})
        data = b"".join(bytes.fromhex(c[4]) for c in chunks)
        total, digest = int(chunks[0][2]), chunks[0][3]
        if len(data) != total or hashlib.sha256(data).hexdigest() != digest:
            raise ReadError(f"file {name!r} of run {run_id!r} is corrupt: {len(data)} of {total} bytes, "
                            "sha256 mismatch")
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
                for t, stream, logger, level, message, exc in self._query(_Q_LOGS, run=run_id)]


class _ServerErrors:
    """Wraps a runner so its failures surface as the SDK's ``ReadError``."""

    def __init__(self, runner: _Runner) -> None:
        self._runner = runner

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            return self._runner.query(sql, params)
        except ReadError:
            raise
        except Exception as exc:
            raise ReadError(f"query failed: {exc}") from exc
