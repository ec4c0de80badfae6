"""The real :class:`~runstream.server.mlflow_backend.TrackingBackend`: MLflow calls mapped onto runstream.

Writes go through the SDK's emitter (one writer per server process) as the
same events a training process sends, so ingest applies the same per-run
limits and rejection accounting; reads use the store's named queries. What
this server wrote and the store does not show yet is merged in from the
:class:`~runstream.server.overlay.Overlay` (read-your-writes). The mapping
(experiment ids, statuses, params = properties, artifacts = run files) is
described in ``DESIGN-mlflow.md``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ContextManager

from producers import Workspace
from producers.emitter import RunState
from producers.errors import SdkError
from producers.files import open_upload
from producers.values import check_attributes
from schemas.limits import RunLimits
from schemas.records import Event, FileChunk, Heartbeat, PropertiesSet, RunStarted, RunStatusChanged, ScalarBatch
from schemas.records import TagsSet
from store import ReadQueries, RunReader, StoreError

from .experiment_ids import DEFAULT_EXPERIMENT_NAME, ExperimentIds, experiment_id
from .mlflow_backend import (
    ArtifactEntry,
    Experiment,
    NO_METRICS,
    HistoryColumns,
    MetricColumns,
    MetricPoint,
    RunInfo,
    RunView,
)
from .mlflow_rules import new_params
from .mlflow_wire import MlflowError
from .overlay import Overlay, SeenPoints

__all__ = ["RunstreamBackend", "TO_MLFLOW_STATUS", "FROM_MLFLOW_STATUS"]

_log = logging.getLogger("runstream.server")

TO_MLFLOW_STATUS: Mapping[str, str] = {"Running": "RUNNING", "Completed": "FINISHED", "Failed": "FAILED",
                                       "Canceled": "KILLED"}
FROM_MLFLOW_STATUS: Mapping[str, str] = {"RUNNING": "Running", "SCHEDULED": "Running", "FINISHED": "Completed",
                                         "FAILED": "Failed", "KILLED": "Canceled"}

_HEARTBEAT_EVERY_S = 60.0
_HEARTBEAT_INTERVAL_MS = 3_600_000
"""MLflow clients send no heartbeats: a run the server beats for reads "lost" only after 3 h without a call."""
_HISTORY_CACHE_S = 10.0
_NEW_RUN_WAIT_S = 5.0  # how long an unknown run id is looked for before RESOURCE_DOES_NOT_EXIST
_KNOWN_RUNS = 10_000
_NOT_ID = re.compile(r"[^\w-]")

Connect = Callable[[], ContextManager[ReadQueries]]


class _Known:
    """What this server knows of a run it writes to (for call-time limit checks)."""

    __slots__ = ("experiment", "state", "params", "tags", "names", "last_beat")

    def __init__(self, experiment: str, state: RunState, view: RunView | None) -> None:
        self.experiment = experiment
        self.state = state
        self.params: dict[str, str] = dict(view.params) if view else {}
        self.tags: set[str] = set(view.tags) if view else set()
        self.names: set[str] = {m.key for m in view.metrics} if view else set()
        self.last_beat = 0.0


class _ExperimentRegistry:
    """Experiments created through MLflow: name, tags, creation time (a JSON file in the server's home)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self._items: dict[str, dict[str, Any]] = data if isinstance(data, dict) else {}

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def add(self, name: str, tags: Mapping[str, str], now_ms: int) -> None:
        with self._lock:
            self._items[name] = {"tags": dict(tags), "creation_time": now_ms}
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._items), encoding="utf-8")
            os.replace(tmp, self._path)


def _history_order(row: tuple[int, int, float]) -> tuple[int, int, float]:
    # MLflow's store orders by (timestamp, step, value); NaN sorts last among equal (timestamp, step).
    t, s, v = row
    return t, s, (math.inf if v != v else v)


def _sdk_refusal(exc: SdkError) -> MlflowError:
    return MlflowError.invalid(f"runstream refused it: {exc}")


class RunstreamBackend:
    """MLflow's tracking store on runstream. ``connect`` opens read queries; ``workspace`` writes."""

    def __init__(self, workspace: Workspace, connect: Connect, *, state_dir: Path,
                 clock: Callable[[], float] = time.time, ack_timeout_s: float = 30.0,
                 settle: Callable[[], None] | None = None) -> None:
        self._ws = workspace
        self._limits: RunLimits = workspace.settings.limits
        self._connect = connect
        self._reader = RunReader(connect, heartbeat_lost_s=workspace.settings.heartbeat_lost_s,
                                 visible_timeout_s=workspace.settings.visible_timeout_s)
        self._clock = clock
        self._ack_timeout_s = ack_timeout_s
        self._settle = settle
        """Called when a run is not found: lets what other processes logged arrive (the spool, ingest lag)."""
        self._overlay = Overlay()
        self._seen = SeenPoints()
        self._ids = ExperimentIds()
        self._registry = _ExperimentRegistry(state_dir / "experiments.json")
        self._lock = threading.Lock()
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._history: dict[tuple[str, str], tuple[float, list[tuple[int, int, float]]]] = {}
        self._stop = threading.Event()
        self._pruner: threading.Thread | None = None

    # -- lifetime ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the overlay's pruning thread."""
        self._pruner = threading.Thread(target=self._prune_loop, name="runstream-server-overlay", daemon=True)
        self._pruner.start()

    def close(self) -> None:
        """Stop pruning and deliver everything written (the emitter's exit timeout)."""
        self._stop.set()
        if self._pruner is not None:
            self._pruner.join(5)
        self._ws.close()

    def _prune_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.prune_once()
            except Exception:  # a failed read is retried at the next tick
                _log.debug("overlay pruning failed", exc_info=True)

    def prune_once(self) -> None:
        """Drop overlay items the store shows now."""
        runs = self._overlay.pending_runs()
        if not runs:
            return
        mark = self._overlay.mark()
        emitter = self._ws.emitter
        if not emitter.flush(self._ack_timeout_s):
            return
        for run_id in runs:
            last = emitter.last_seq(run_id)
            if last == 0 or self._reader.visible_seq(run_id, emitter.writer_id) >= last:
                self._overlay.prune(run_id, mark)

    # -- helpers -----------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _send(self, known: _Known, events: list[tuple[type[Event], dict[str, Any], int]]) -> None:
        """Queue ``events`` for the run and wait until the transport has them (the write is acknowledged)."""
        now = time.monotonic()
        if now - known.last_beat >= _HEARTBEAT_EVERY_S:
            events = [*events, (Heartbeat, {"interval_ms": _HEARTBEAT_INTERVAL_MS}, 64)]
            known.last_beat = now
        emitter = self._ws.emitter
        try:
            emitter.enqueue_many(known.state, events)
        except SdkError as exc:
            if exc.retriable:
                raise MlflowError("TEMPORARILY_UNAVAILABLE", f"runstream cannot take writes now: {exc}") from exc
            raise _sdk_refusal(exc) from exc
        if not emitter.flush(self._ack_timeout_s):
            raise MlflowError("TEMPORARILY_UNAVAILABLE",
                              f"runstream could not deliver the write within {self._ack_timeout_s:.0f}s")

    def _known_run(self, run_id: str) -> _Known:
        with self._lock:
            known = self._known.get(run_id)
            if known is not None:
                self._known.move_to_end(run_id)
                return known
        view = self.get_run(run_id)
        if view is None:
            raise MlflowError.not_found(f"Run with id={run_id} not found")
        name = self._experiment_name(view.info.experiment_id) or DEFAULT_EXPERIMENT_NAME
        return self._remember(run_id, name, view)

    def _remember(self, run_id: str, experiment: str, view: RunView | None) -> _Known:
        state = self._ws.emitter.open_run(run_id, experiment, heartbeat=False)
        known = _Known(experiment, state, view)
        with self._lock:
            self._known[run_id] = known
            while len(self._known) > _KNOWN_RUNS:
                self._known.popitem(last=False)
        return known

    def _store_experiments(self) -> dict[str, tuple[int, int]]:
        with self._connect() as q:
            rows = q.fetch("mlflow_experiments", {})
        out = {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
        self._ids.learn(out)
        return out

    def _experiment_name(self, exp_id: str) -> str | None:
        name = self._ids.name_of(exp_id)
        if name is None:
            self._ids.learn(self._registry.names())
            self._store_experiments()
            name = self._ids.name_of(exp_id)
        return name

    def _experiment(self, name: str, store: Mapping[str, tuple[int, int]]) -> Experiment:
        entry = self._registry.get(name) or {}
        first, last = store.get(name, (0, 0))
        created = int(entry.get("creation_time") or first or self._now_ms())
        return Experiment(experiment_id=experiment_id(name), name=name, creation_time=created,
                          last_update_time=max(created, last), tags=dict(entry.get("tags") or {}))

    # -- experiments -------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        name = self._experiment_name(experiment_id)
        return None if name is None else self._experiment(name, self._store_experiments())

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        store = self._store_experiments()
        if name in store or self._registry.get(name) is not None or name == DEFAULT_EXPERIMENT_NAME:
            return self._experiment(name, store)
        return None

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> Experiment:
        store = self._store_experiments()
        if name in store or self._registry.get(name) is not None or name == DEFAULT_EXPERIMENT_NAME:
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.")
        if len(name) > self._limits.max_id_length:
            raise MlflowError.invalid(f"experiment name has {len(name)} characters; runstream's limit is "
                                      f"{self._limits.max_id_length} (max_id_length)")
        clash = self._ids.clash(name)
        if clash is not None:
            raise MlflowError("RESOURCE_ALREADY_EXISTS",
                              f"experiment {name!r} would share its id with {clash!r}; choose another name")
        self._registry.add(name, tags, self._now_ms())
        self._ids.learn([name])
        return self._experiment(name, store)

    def list_experiments(self) -> Sequence[Experiment]:
        store = self._store_experiments()
        names = dict.fromkeys([DEFAULT_EXPERIMENT_NAME, *self._registry.names(), *store])
        self._ids.learn(names)
        return [self._experiment(n, store) for n in names]

    # -- runs: reading -----------------------------------------------------------------
    def _info(self, row: Sequence[Any], status: tuple[str, int | None], tags: Mapping[str, str]) -> RunInfo:
        run_id, experiment, display_name, start_ms = row[0], row[1], row[3] or None, int(row[7])
        name, end = status
        return RunInfo(run_id=run_id, experiment_id=experiment_id(experiment),
                       run_name=display_name or tags.get("mlflow.runName") or run_id,
                       user_id=tags.get("mlflow.user", ""), status=TO_MLFLOW_STATUS.get(name, "RUNNING"),
                       start_time=start_ms, end_time=end if name != "Running" else None)

    def get_run(self, run_id: str) -> RunView | None:
        view = self._get_run(run_id)
        if view is None and self._settle is not None:
            # A run another process just started (the Azure pattern: start_logging, then MLflow on its id):
            # its RunStarted may still be in that process's emitter, so look again for a short while.
            deadline = time.monotonic() + _NEW_RUN_WAIT_S
            while view is None and time.monotonic() < deadline:
                self._settle()
                view = self._get_run(run_id)
                if view is None:
                    time.sleep(0.1)
        return view

    def _get_run(self, run_id: str) -> RunView | None:
        stored: RunView | None = None
        with self._connect() as q:
            rows = q.fetch("run", {"run": run_id})
            if rows:
                status_rows = q.fetch("status", {"run": run_id})
                hb = q.fetch("heartbeat", {"run": run_id})
                tags = {k: v if int(h) else "" for k, v, h in q.fetch("attributes", {"run": run_id, "kind": "tag"})}
                props = {k: v for k, v, _ in q.fetch("attributes", {"run": run_id, "kind": "property"})}
                scalars = q.fetch("mlflow_latest_scalars", {"run": run_id})
                status: tuple[str, int | None] = ("Running", None)
                if status_rows:
                    name, details, created = status_rows[0][0], status_rows[0][1] or None, int(status_rows[0][2])
                    last_beat = int(hb[0][0] or 0) if hb and int(hb[0][2] or 0) else None
                    interval_ms = int(hb[0][1] or 0) if last_beat else 0
                    lost = self._reader._apply_lost(name, details, created, last_beat, interval_ms)
                    status = (lost[0], lost[2])
                stored = RunView(info=self._info(rows[0], status, tags),
                                 metrics=[MetricPoint(str(r[0]), float(r[1]), int(r[2]), int(r[3])) for r in scalars],
                                 params=props, tags=tags)
        return self._overlay.merge_run(run_id, stored)

    def list_runs(self, experiment_ids: Sequence[str]) -> Sequence[RunView]:
        out: dict[str, RunView] = {}
        for exp_id in dict.fromkeys(experiment_ids):
            name = self._experiment_name(exp_id)
            if name is None:
                continue
            with self._connect() as q:
                runs = q.fetch("runs_of_experiment", {"experiment": name})
                statuses = {r[0]: r[1:] for r in q.fetch("statuses_of_experiment", {"experiment": name})}
                beats = {r[0]: r[1:] for r in q.fetch("heartbeats_of_experiment", {"experiment": name})}
                attrs = q.fetch("mlflow_attributes_of_experiment", {"experiment": name})
                scalars = q.fetch("mlflow_latest_scalars_of_experiment", {"experiment": name})
            tags: dict[str, dict[str, str]] = {}
            props: dict[str, dict[str, str]] = {}
            for run_id, kind, key, value, has_value in attrs:
                target = tags if kind == "tag" else props if kind == "property" else None
                if target is not None:
                    target.setdefault(run_id, {})[key] = value if int(has_value) else ""
            metrics: dict[str, list[MetricPoint]] = {}
            for run_id, key, value, time_ms, step in scalars:
                metrics.setdefault(run_id, []).append(MetricPoint(key, float(value), int(time_ms), int(step)))
            for row in runs:
                run_id = row[0]
                st = statuses.get(run_id)
                status: tuple[str, int | None] = ("Running", None)
                if st is not None:
                    beat = beats.get(run_id)
                    lost = self._reader._apply_lost(st[0], st[1] or None, int(st[2]),
                                                    int(beat[0]) if beat else None, int(beat[1]) if beat else 0)
                    status = (lost[0], lost[2])
                run_tags = tags.get(run_id, {})
                view = RunView(info=self._info(row, status, run_tags), metrics=metrics.get(run_id, []),
                               params=props.get(run_id, {}), tags=run_tags)
                merged = self._overlay.merge_run(run_id, view)
                if merged is not None:
                    out[run_id] = merged
        for info in self._overlay.created_runs(experiment_ids):
            if info.run_id not in out:
                merged = self._overlay.merge_run(info.run_id, None)
                if merged is not None:
                    out[info.run_id] = merged
        return list(out.values())

    # -- runs: writing -----------------------------------------------------------------
    def _check_attrs(self, items: Mapping[str, str], what: str) -> None:
        try:
            check_attributes(items, self._limits, what=what, allow_none=False)
        except SdkError as exc:
            raise _sdk_refusal(exc) from exc

    def create_run(self, *, experiment_id: str, user_id: str, start_time: int, run_name: str | None,
                   tags: Mapping[str, str]) -> RunView:
        name = self._experiment_name(experiment_id)
        if name is None:
            raise MlflowError.not_found(f"No Experiment with id={experiment_id} exists")
        run_id = f"{_NOT_ID.sub('_', name)[:200]}_{int(self._clock())}_{uuid.uuid4().hex[:8]}"
        run_name = run_name or tags.get("mlflow.runName") or run_id
        all_tags = {**tags, "mlflow.runName": run_name}
        if user_id:
            all_tags.setdefault("mlflow.user", user_id)
        self._check_attrs(all_tags, "tag")
        if len(all_tags) > self._limits.max_tags:
            raise MlflowError.invalid(f"{len(all_tags)} tags; runstream's limit is {self._limits.max_tags} (max_tags)")
        known = self._remember(run_id, name, None)
        known.tags.update(all_tags)
        self._send(known, [(RunStarted, {"parent_run_id": None, "display_name": run_name[:self._limits.max_id_length],
                                         "kind": "interactive", "tags": dict(all_tags), "properties": {},
                                         "host": socket.gethostname(), "pid": os.getpid()}, 512)])
        info = RunInfo(run_id=run_id, experiment_id=experiment_id, run_name=run_name, user_id=user_id,
                       status="RUNNING", start_time=self._now_ms())
        self._overlay.record_info(info)
        self._overlay.record_batch(run_id, NO_METRICS, {}, all_tags)
        view = self._overlay.merge_run(run_id, None)
        assert view is not None
        return view

    def update_run(self, run_id: str, *, status: str | None, end_time: int | None,
                   run_name: str | None) -> RunInfo:
        known = self._known_run(run_id)
        view = self.get_run(run_id)
        assert view is not None
        info = view.info
        events: list[tuple[type[Event], dict[str, Any], int]] = []
        if status is not None:
            events.append((RunStatusChanged, {"status": FROM_MLFLOW_STATUS[status], "error_details": None}, 128))
            mapped = TO_MLFLOW_STATUS[FROM_MLFLOW_STATUS[status]]
            ended = None if mapped == "RUNNING" else (end_time or self._now_ms())
            info = RunInfo(run_id=info.run_id, experiment_id=info.experiment_id, run_name=info.run_name,
                           user_id=info.user_id, status=mapped, start_time=info.start_time, end_time=ended)
        if run_name and run_name != info.run_name:
            events.append((TagsSet, {"tags": {"mlflow.runName": run_name}}, 128))
            info = RunInfo(run_id=info.run_id, experiment_id=info.experiment_id, run_name=run_name,
                           user_id=info.user_id, status=info.status, start_time=info.start_time,
                           end_time=info.end_time)
        if events:
            self._send(known, events)
            self._overlay.record_info(info)
            if run_name:
                self._overlay.record_batch(run_id, NO_METRICS, {}, {"mlflow.runName": run_name})
        return info

    def log_batch(self, run_id: str, *, metrics: MetricColumns, params: Mapping[str, str],
                  tags: Mapping[str, str]) -> None:
        known = self._known_run(run_id)
        lim = self._limits
        fresh = new_params(run_id, known.params, list(params.items()))
        self._check_attrs(fresh, "param (a runstream property)")
        self._check_attrs(tags, "tag")
        if len(known.params.keys() | fresh.keys()) > lim.max_properties:
            raise MlflowError.invalid(
                f"run {run_id} would have {len(known.params.keys() | fresh.keys())} params; runstream keeps params "
                f"as run properties and allows {lim.max_properties} a run (limit max_properties)")
        if len(known.tags | tags.keys()) > lim.max_tags:
            raise MlflowError.invalid(f"run {run_id} would have {len(known.tags | tags.keys())} tags; runstream "
                                      f"allows {lim.max_tags} a run (limit max_tags)")
        points = self._seen.fresh(run_id, metrics) if len(metrics) else NO_METRICS
        names = list(dict.fromkeys(points.keys))
        for name in names:
            if len(name) > lim.max_name_length:
                raise MlflowError.invalid(f"metric name {name[:40]!r}... has {len(name)} characters; runstream's "
                                          f"limit is {lim.max_name_length} (max_name_length)")
        if len(known.names | set(names)) > lim.max_metric_names:
            raise MlflowError.invalid(
                f"run {run_id} would have {len(known.names | set(names))} metric names; runstream allows "
                f"{lim.max_metric_names} a run (limit max_metric_names)")
        events: list[tuple[type[Event], dict[str, Any], int]] = []
        if fresh:
            events.append((PropertiesSet, {"properties": fresh}, 64 + sum(len(k) + len(v) for k, v in fresh.items())))
        if tags:
            events.append((TagsSet, {"tags": dict(tags)}, 64 + sum(len(k) + len(v) for k, v in tags.items())))
        if len(points):
            # One columnar ScalarBatch straight from the request's columns (the lists are not copied).
            index = {name: i for i, name in enumerate(names)}
            events.append((ScalarBatch, {
                "names": names, "descriptions": [""] * len(names),
                "name_idx": [index[k] for k in points.keys], "steps": points.steps,
                "times_ms": points.timestamps, "values": points.values,
                "text_pos": [], "text_values": [],
            }, 28 * len(points)))
        if not events:
            return
        self._send(known, events)
        known.params.update(fresh)
        known.tags.update(tags)
        known.names.update(names)
        self._overlay.record_batch(run_id, points, fresh, tags)
        with self._lock:
            for name in names:
                self._history.pop((run_id, name), None)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._known_run(run_id)
        raise MlflowError.invalid("runstream does not delete tags (its tags can be set again, not removed)")

    def metric_history(self, run_id: str, key: str, *, offset: int, limit: int) -> HistoryColumns:
        view = self.get_run(run_id)
        if view is None:
            raise MlflowError.not_found(f"Run with id={run_id} not found")
        name = self._experiment_name(view.info.experiment_id) or DEFAULT_EXPERIMENT_NAME
        with self._lock:
            cached = self._history.get((run_id, key))
        if offset > 0 and cached is not None and time.monotonic() - cached[0] < _HISTORY_CACHE_S:
            rows = cached[1]
        else:
            with self._connect() as q:
                stored = q.fetch("mlflow_history", {"experiment": name, "run": run_id, "name": key})
            times, steps, values = (stored[0][0], stored[0][1], stored[0][2]) if stored else ([], [], [])
            pending = self._overlay.pending_points(run_id, key)
            # A set collapses identical points (MLflow keeps them once; re-delivered rows too). NaN != NaN,
            # so NaN points are made equal through a sentinel that sorts like the NaN they stand for.
            points = set(zip(times, steps, values))
            points.update((p.timestamp, p.step, p.value) for p in pending)
            nans = {(t, s) for t, s, v in points if v != v}
            rows = [(t, s, v) for t, s, v in points if v == v] + [(t, s, math.nan) for t, s in nans]
            rows.sort(key=_history_order)
            with self._lock:
                self._history[(run_id, key)] = (time.monotonic(), rows)
        page = rows[offset:offset + limit]
        return HistoryColumns([r[0] for r in page], [r[1] for r in page], [r[2] for r in page])

    # -- artifacts ---------------------------------------------------------------------
    def put_artifact(self, run_id: str, path: str, source: BinaryIO, size: int, content_type: str) -> None:
        known = self._known_run(run_id)
        settings = self._ws.settings
        data = source.read()
        try:
            upload = open_upload(path, io.BytesIO(data), max_bytes=self._limits.max_file_bytes,
                                 chunk_bytes=settings.file_chunk_bytes)
        except SdkError as exc:
            raise _sdk_refusal(exc) from exc
        try:
            try:
                upload.measure()  # size and hash before the first chunk (this request already runs off the event loop)
            except SdkError as exc:
                raise _sdk_refusal(exc) from exc
            events: list[tuple[type[Event], dict[str, Any], int]] = [
                (FileChunk, {"path": upload.path, "upload_id": upload.upload_id, "chunk_index": index,
                             "chunk_count": upload.chunk_count, "total_size": upload.size, "sha256": upload.sha256,
                             "content_type": content_type or upload.content_type, "data": chunk}, len(chunk) + 256)
                for index, chunk in upload.chunks()]
        finally:
            upload.close()
        self._send(known, events)
        self._overlay.record_file(run_id, upload.path, data)

    def list_artifacts(self, run_id: str) -> Sequence[ArtifactEntry]:
        with self._connect() as q:
            files = {str(p): int(s) for p, s in q.fetch("mlflow_file_sizes", {"run": run_id})}
        files.update({p: size for p, (size, _) in self._overlay.pending_files(run_id).items()})
        return [ArtifactEntry(p, files[p]) for p in sorted(files)]

    def read_artifact(self, run_id: str, path: str) -> Iterator[bytes] | None:
        pending = self._overlay.pending_files(run_id).get(path)
        if pending is not None and pending[1] is not None:
            return iter([pending[1]])
        deadline = time.monotonic() + (self._ws.settings.visible_timeout_s if pending is not None else 0)
        while True:
            try:
                with tempfile.TemporaryDirectory(prefix="runstream-artifact-") as tmp:
                    target = self._reader.download_file(run_id, path, Path(tmp) / "file")
                    data = target.read_bytes()
                return iter([data])
            except StoreError:
                if time.monotonic() >= deadline:
                    if pending is None and path not in {e.path for e in self.list_artifacts(run_id)}:
                        return None
                    raise
                time.sleep(0.2)
