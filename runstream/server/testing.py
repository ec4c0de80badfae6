"""Test helpers shipped with the server: an in-memory :class:`~runstream.server.mlflow_backend.TrackingBackend`.

It keeps MLflow's store semantics (identical points once, immutable params,
the default experiment "0") so unit tests of the protocol logic need neither
runstream's pipeline nor a database. Tests of runstream's own mapping use the
real backend against the real stores.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence

from .mlflow_backend import (
    DEFAULT_EXPERIMENT_ID,
    ArtifactEntry,
    Experiment,
    HistoryColumns,
    MetricColumns,
    MetricPoint,
    RunInfo,
    RunView,
)
from .mlflow_rules import new_params
from .mlflow_wire import MlflowError

__all__ = ["InMemoryTrackingBackend"]


class _Run:
    __slots__ = ("info", "params", "tags", "points", "seen", "files")

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.points: dict[str, list[MetricPoint]] = {}
        self.seen: set[tuple[str, str, int, int]] = set()
        self.files: dict[str, bytes] = {}


def _latest(points: list[MetricPoint]) -> MetricPoint:
    # MLflow's "latest": max step, then timestamp, then value (NaN counts as smallest here).
    return max(points, key=lambda p: (p.step, p.timestamp, -float("inf") if p.value != p.value else p.value))


class InMemoryTrackingBackend:
    """A thread-safe in-memory tracking store. ``clock`` returns epoch seconds."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        now = self._now()
        self._experiments: dict[str, Experiment] = {
            DEFAULT_EXPERIMENT_ID: Experiment(experiment_id=DEFAULT_EXPERIMENT_ID, name="Default",
                                              creation_time=now, last_update_time=now)
        }
        self._runs: dict[str, _Run] = {}
        self._next_experiment = 1

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise MlflowError.not_found(f"Run with id={run_id} not found")
        return run

    # -- experiments -------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        with self._lock:
            return self._experiments.get(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._lock:
            return next((e for e in self._experiments.values() if e.name == name), None)

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> Experiment:
        with self._lock:
            if any(e.name == name for e in self._experiments.values()):
                raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.")
            experiment_id = str(self._next_experiment)
            self._next_experiment += 1
            now = self._now()
            exp = Experiment(experiment_id=experiment_id, name=name, creation_time=now,
                             last_update_time=now, tags=dict(tags))
            self._experiments[experiment_id] = exp
            return exp

    def list_experiments(self) -> Sequence[Experiment]:
        with self._lock:
            return list(self._experiments.values())

    # -- runs --------------------------------------------------------------------------
    def create_run(self, *, experiment_id: str, user_id: str, start_time: int, run_name: str | None,
                   tags: Mapping[str, str]) -> RunView:
        with self._lock:
            if experiment_id not in self._experiments:
                raise MlflowError.not_found(f"No Experiment with id={experiment_id} exists")
            run_id = uuid.uuid4().hex
            name = run_name or tags.get("mlflow.runName") or f"run-{run_id[:8]}"
            run = _Run(RunInfo(run_id=run_id, experiment_id=experiment_id, run_name=name, user_id=user_id,
                               status="RUNNING", start_time=start_time))
            run.tags.update(tags)
            run.tags["mlflow.runName"] = name
            self._runs[run_id] = run
            return self._view(run)

    def _view(self, run: _Run) -> RunView:
        return RunView(info=run.info, metrics=[_latest(p) for p in run.points.values()],
                       params=dict(run.params), tags=dict(run.tags))

    def get_run(self, run_id: str) -> RunView | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._view(run)

    def list_runs(self, experiment_ids: Sequence[str]) -> Sequence[RunView]:
        wanted = set(experiment_ids)
        with self._lock:
            return [self._view(r) for r in self._runs.values() if r.info.experiment_id in wanted]

    def update_run(self, run_id: str, *, status: str | None, end_time: int | None,
                   run_name: str | None) -> RunInfo:
        with self._lock:
            run = self._run(run_id)
            info = run.info
            if status is not None:
                info = replace(info, status=status)
            if end_time is not None:
                info = replace(info, end_time=end_time)
            if run_name:
                info = replace(info, run_name=run_name)
                run.tags["mlflow.runName"] = run_name
            run.info = info
            return info

    def log_batch(self, run_id: str, *, metrics: MetricColumns, params: Mapping[str, str],
                  tags: Mapping[str, str]) -> None:
        with self._lock:
            run = self._run(run_id)
            run.params.update(new_params(run_id, run.params, list(params.items())))
            run.tags.update(tags)
            for point in metrics.points():
                identity = (point.key, repr(point.value), point.timestamp, point.step)  # repr: NaN == NaN
                if identity not in run.seen:
                    run.seen.add(identity)
                    run.points.setdefault(point.key, []).append(point)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._lock:
            run = self._run(run_id)
            if run.tags.pop(key, None) is None:
                raise MlflowError.not_found(f"No tag with name: {key} in run with id {run_id}")

    def metric_history(self, run_id: str, key: str, *, offset: int, limit: int) -> HistoryColumns:
        with self._lock:
            points = sorted(self._run(run_id).points.get(key, []), key=lambda p: (p.timestamp, p.step, p.value))
        page = points[offset:offset + limit]
        return HistoryColumns([p.timestamp for p in page], [p.step for p in page], [p.value for p in page])

    # -- artifacts ---------------------------------------------------------------------
    def put_artifact(self, run_id: str, path: str, source: BinaryIO, size: int, content_type: str) -> None:
        data = source.read(size)
        with self._lock:
            self._run(run_id).files[path] = data

    def list_artifacts(self, run_id: str) -> Sequence[ArtifactEntry]:
        with self._lock:
            return [ArtifactEntry(p, len(d)) for p, d in sorted(self._run(run_id).files.items())]

    def read_artifact(self, run_id: str, path: str) -> Iterator[bytes] | None:
        with self._lock:
            data = self._run(run_id).files.get(path)
        return None if data is None else iter([data])
