"""The seam between the MLflow API and the tracking store behind it.

The handlers in :mod:`runstream.server.mlflow_api` speak MLflow's protocol and
nothing else; everything they need from storage is :class:`TrackingBackend`.
The real backend maps it onto runstream (SDK emitter for writes, ``store`` for
reads, an overlay for read-your-writes); :class:`runstream.server.testing.InMemoryTrackingBackend`
fulfils it in memory for unit tests of the protocol logic.

Every method is blocking (the app calls it in a thread pool) and raises
:class:`~runstream.server.mlflow_wire.MlflowError` for refusals the client
must see (unknown run, changed param, over a limit). Statuses are MLflow's
(``RUNNING``, ``SCHEDULED``, ``FINISHED``, ``FAILED``, ``KILLED``).
Every write is idempotent: the client retries a POST that got a 5xx, so the
same call arriving twice must leave the same state as arriving once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Mapping, NamedTuple, Protocol, Sequence

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "RUN_STATUSES",
    "Experiment",
    "MetricPoint",
    "MetricColumns",
    "RunInfo",
    "RunView",
    "HistoryColumns",
    "ArtifactEntry",
    "NO_METRICS",
    "TrackingBackend",
]

DEFAULT_EXPERIMENT_ID = "0"
"""The experiment a run lands in when the client names none; it always exists."""

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True, slots=True, kw_only=True)
class Experiment:
    """An experiment as MLflow sees it."""

    experiment_id: str
    name: str
    creation_time: int
    last_update_time: int
    tags: Mapping[str, str] = field(default_factory=dict)
    lifecycle_stage: str = "active"


class MetricPoint(NamedTuple):
    """One metric point; MLflow's identity of a point is all four fields (a tuple: cheap to build in bulk)."""

    key: str
    value: float
    timestamp: int
    step: int


class MetricColumns:
    """The metric points of one write, column by column (a ``log-batch`` of 1,000 points is four lists).

    Built once per request from the JSON body and handed on as is: rules check
    the keys, the backend builds one columnar ``ScalarBatch`` from the columns,
    the overlay keeps them as one chunk. :meth:`points` gives row tuples for
    the few places that want them. The lists are not copied: do not change them.
    """

    __slots__ = ("keys", "values", "timestamps", "steps")

    def __init__(self, keys: list[str], values: list[float], timestamps: list[int], steps: list[int]) -> None:
        if not len(keys) == len(values) == len(timestamps) == len(steps):
            raise ValueError("metric columns differ in length")
        self.keys = keys
        self.values = values
        self.timestamps = timestamps
        self.steps = steps

    @classmethod
    def of(cls, points: Sequence[MetricPoint]) -> MetricColumns:
        """Columns of row-shaped points."""
        return cls([p.key for p in points], [p.value for p in points], [p.timestamp for p in points],
                   [p.step for p in points])

    def __len__(self) -> int:
        return len(self.keys)

    def points(self) -> list[MetricPoint]:
        """The points as rows, in order."""
        return list(map(MetricPoint, self.keys, self.values, self.timestamps, self.steps))

    def take(self, rows: Sequence[int]) -> MetricColumns:
        """The points at positions ``rows`` (ascending), as new columns."""
        k, v, t, s = self.keys, self.values, self.timestamps, self.steps
        return MetricColumns([k[i] for i in rows], [v[i] for i in rows], [t[i] for i in rows], [s[i] for i in rows])


NO_METRICS = MetricColumns([], [], [], [])
"""A write without metric points."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """A run's attributes (``end_time`` None while it runs)."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None = None
    lifecycle_stage: str = "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunView:
    """A run with its data: the latest point of each metric, params, tags."""

    info: RunInfo
    metrics: Sequence[MetricPoint] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


class HistoryColumns(NamedTuple):
    """Points of one metric, columnar, ordered by (timestamp, step, value) like MLflow's store."""

    timestamps: Sequence[int]
    steps: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """One stored artifact: its path under the run's root (``/``-separated) and size in bytes."""

    path: str
    size: int


class TrackingBackend(Protocol):
    """What the MLflow API needs from storage. Ids are strings; times are epoch milliseconds."""

    # -- experiments -------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        """The experiment, or None."""

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment of that name (MLflow-created, or one runstream's runs name), or None."""

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> Experiment:
        """A new experiment; ``RESOURCE_ALREADY_EXISTS`` if the name is taken."""

    def list_experiments(self) -> Sequence[Experiment]:
        """Every experiment, the default one included."""

    # -- runs --------------------------------------------------------------------------
    def create_run(self, *, experiment_id: str, user_id: str, start_time: int, run_name: str | None,
                   tags: Mapping[str, str]) -> RunView:
        """A new RUNNING run; ``RESOURCE_DOES_NOT_EXIST`` for an unknown experiment."""

    def get_run(self, run_id: str) -> RunView | None:
        """The run as of every write acknowledged so far (read-your-writes), or None."""

    def list_runs(self, experiment_ids: Sequence[str]) -> Sequence[RunView]:
        """Every run of these experiments (unknown ids give none)."""

    def update_run(self, run_id: str, *, status: str | None, end_time: int | None,
                   run_name: str | None) -> RunInfo:
        """Change status, end time or name; a FINISHED run may go back to RUNNING (resume)."""

    def log_batch(self, run_id: str, *, metrics: MetricColumns, params: Mapping[str, str],
                  tags: Mapping[str, str]) -> None:
        """Store a validated batch (its points as columns). Identical points are kept once; a param logged again with
        the same value is a no-op, with another value ``INVALID_PARAMETER_VALUE``.
        Finished runs accept all of it."""

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag; ``RESOURCE_DOES_NOT_EXIST`` if the run has no such tag."""

    def metric_history(self, run_id: str, key: str, *, offset: int, limit: int) -> HistoryColumns:
        """Up to ``limit`` points of ``key`` from ``offset`` (empty for an unknown key)."""

    # -- artifacts ---------------------------------------------------------------------
    def put_artifact(self, run_id: str, path: str, source: BinaryIO, size: int, content_type: str) -> None:
        """Store ``size`` bytes read from ``source`` as the run's file ``path`` (a safe relative path)."""

    def list_artifacts(self, run_id: str) -> Sequence[ArtifactEntry]:
        """Every file of the run, whichever API uploaded it."""

    def read_artifact(self, run_id: str, path: str) -> Iterator[bytes] | None:
        """The file's bytes in chunks, or None if the run has no such file."""
