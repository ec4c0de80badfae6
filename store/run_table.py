"""Experiments and runs as tables, columnar: the UI's start page, runs table and sweep view.

- :func:`experiments`: every experiment with its run count, last activity and status mix.
- :func:`run_table`: every run of an experiment (or the children of one parent
  run, a HyperDrive sweep) with status, times, tags, properties and, for the
  metrics asked for, the last, min and max value. Filtering, sorting and
  ranking of these (at most tens of thousands of) rows happen where they are
  shown; the store answers in one pass per table.

Statuses follow the SDK's rule (:func:`effective_status`): a run still
"Running" whose heartbeats stopped reads "Failed" ("process lost"). Every
query is one a duplicate row cannot change (``argMax``, ``min``, ``max``,
``uniqExact``) or deduplicates with ``LIMIT 1 BY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._sqlparts import Reads, finite_or_none, in_array, in_array_params

__all__ = [
    "STATUSES", "MAX_METRICS", "QUERIES", "effective_status", "Experiments", "MetricColumns", "RunTable", "experiments",
    "run_table",
]

STATUSES = ("Running", "Completed", "Failed", "Canceled")

MAX_METRICS = 20
"""Most metric columns one runs table may ask for."""


def effective_status(status: str, details: str | None, changed_ms: int, last_beat_ms: int | None,
                     interval_ms: int, *, now_ms: float, lost_after_s: float = 300.0) -> tuple[str, str | None]:
    """``(status, error details)`` as readers show them: silent "Running" runs read "Failed".

    A run is lost when neither a status change nor a heartbeat came for
    ``lost_after_s`` (or three of its heartbeat intervals, if longer). The same
    rule as ``RunReader``'s (one copy once the readers move into ``store``).
    """
    if status != "Running":
        return status, details
    lost_after_ms = max(lost_after_s * 1000, 3 * interval_ms)
    last_sign = max(last_beat_ms or 0, changed_ms)
    if now_ms - last_sign > lost_after_ms:
        return "Failed", (f"process lost: no heartbeat for {(now_ms - last_sign) / 1000:.0f}s (limit "
                          f"{lost_after_ms / 1000:.0f}s); the run's process died without ending the run")
    return status, None


# -- experiments ---------------------------------------------------------------------------------

_Q_EXPERIMENTS = "SELECT experiment, uniqExact(run_id), max(start_ms) FROM {db}.runs GROUP BY experiment"
_Q_ALL_STATUSES = (
    "SELECT run_id, experiment, status, created_ms FROM {db}.run_status "
    "ORDER BY run_id, created_ms DESC, seq DESC LIMIT 1 BY run_id"
)
_Q_ALL_HEARTBEATS = "SELECT run_id, max(created_ms), max(interval_ms) FROM {db}.run_heartbeats GROUP BY run_id"


@dataclass(frozen=True, slots=True)
class Experiments:
    """One entry per experiment, newest activity first; ``status`` maps each of :data:`STATUSES` to counts."""

    name: list[str]
    runs: list[int]
    last_activity_ms: list[int]
    status: dict[str, list[int]]


def experiments(reads: Reads, *, now_ms: float, lost_after_s: float = 300.0) -> Experiments:
    """Every experiment: run count, last activity (start, status change or heartbeat), status mix."""
    rows = reads.fetch("ui_table_experiments", {})
    beats = {str(r[0]): (int(r[1]), int(r[2])) for r in reads.fetch("ui_table_all_heartbeats", {})}
    mix: dict[str, dict[str, int]] = {str(r[0]): dict.fromkeys(STATUSES, 0) for r in rows}
    last = {str(r[0]): int(r[2]) for r in rows}
    seen: dict[str, set[str]] = {}
    for run_id, experiment, status, changed in reads.fetch("ui_table_all_statuses", {}):
        beat, interval = beats.get(run_id, (0, 0))
        shown, _ = effective_status(status, None, int(changed), beat or None, interval, now_ms=now_ms,
                                    lost_after_s=lost_after_s)
        counts = mix.setdefault(experiment, dict.fromkeys(STATUSES, 0))
        counts[shown] = counts.get(shown, 0) + 1
        seen.setdefault(experiment, set()).add(run_id)
        last[experiment] = max(last.get(experiment, 0), int(changed), beat)
    runs = {str(r[0]): int(r[1]) for r in rows}
    for experiment, counts in mix.items():
        # A run whose start is visible but no status yet (ingest mid-batch) counts as Running.
        counts["Running"] += max(0, runs.get(experiment, 0) - len(seen.get(experiment, ())))
    order = sorted(mix, key=lambda e: (-last.get(e, 0), e))
    return Experiments(
        name=order,
        runs=[runs.get(e, 0) for e in order],
        last_activity_ms=[last.get(e, 0) for e in order],
        status={s: [mix[e].get(s, 0) for e in order] for s in STATUSES},
    )


# -- runs of one experiment ----------------------------------------------------------------------

_Q_RUNS = (
    "SELECT run_id, any(parent_run_id), any(display_name), any(kind), min(start_ms) AS s FROM {db}.runs "
    "WHERE experiment = {experiment:String} GROUP BY run_id ORDER BY s DESC, run_id DESC"
)
_Q_EXPERIMENT_OF = "SELECT any(experiment) FROM {db}.runs WHERE run_id = {run:String}"
_Q_STATUSES = (
    "SELECT run_id, status, error_details, created_ms FROM {db}.run_status WHERE experiment = {experiment:String} "
    "ORDER BY run_id, created_ms DESC, seq DESC LIMIT 1 BY run_id"
)
_Q_HEARTBEATS = (
    "SELECT run_id, max(created_ms), max(interval_ms) FROM {db}.run_heartbeats "
    "WHERE experiment = {experiment:String} GROUP BY run_id"
)
_Q_ATTRIBUTES = (
    "SELECT run_id, kind, key, argMax(value, created_ms), argMax(has_value, created_ms) FROM {db}.run_attributes "
    "WHERE experiment = {experiment:String} GROUP BY run_id, kind, key"
)
_Q_METRIC_NAMES = (
    "SELECT name, any(kind), uniqExact(run_id) FROM {db}.metric_names WHERE experiment = {experiment:String} "
    "GROUP BY name ORDER BY name"
)
_Q_SUMMARIES = (
    "SELECT run_id, name, argMaxIf(value, step, is_text = 0), minIf(value, is_text = 0 AND isFinite(value)), "
    "maxIf(value, is_text = 0 AND isFinite(value)), max(step), argMaxIf(text, step, is_text = 1), "
    "countIf(is_text = 0) FROM {db}.metric_scalars "
    "WHERE experiment = {experiment:String} AND " + in_array("name", "names") + " GROUP BY run_id, name"
)


@dataclass(frozen=True, slots=True)
class MetricColumns:
    """Per run (aligned with :class:`RunTable`'s rows): the last (by step), min and max numeric value.

    ``text`` holds the last string value for runs that logged strings under this name.
    None where the run has no (finite) value.
    """

    last: list[float | None]
    min: list[float | None]
    max: list[float | None]
    last_step: list[int | None]
    text: list[str | None]


@dataclass(frozen=True, slots=True)
class RunTable:
    """Runs of one experiment, newest first, one list per column."""

    experiment: str
    run_id: list[str]
    display_name: list[str]
    parent_run_id: list[str]
    kind: list[str]
    status: list[str]
    error: list[str | None]
    start_ms: list[int]
    end_ms: list[int | None]
    """When the run ended (its final status), None while running."""
    last_activity_ms: list[int]
    tags: dict[str, list[str | None]]
    """Tag key -> value per run (None: the run has no such tag; "" a valueless tag)."""
    properties: dict[str, list[str | None]]
    metrics: dict[str, MetricColumns]
    metric_names: list[tuple[str, str, int]] = field(default_factory=list)
    """Every metric of the experiment: (name, kind, runs that logged it), for the column picker."""


def run_table(reads: Reads, experiment: str | None = None, *, metrics: Sequence[str] = (),
              parent: str | None = None, default_metrics: int = 0, now_ms: float,
              lost_after_s: float = 300.0) -> RunTable:
    """Runs of ``experiment`` (or of ``parent``'s experiment, only its children), with ``metrics`` summarised.

    With no ``metrics``, the first ``default_metrics`` scalar metric names (by name) are.
    ``ValueError`` when neither is given or more than :data:`MAX_METRICS` metrics are asked for.
    """
    metrics = list(dict.fromkeys(metrics))
    if len(metrics) > MAX_METRICS:
        raise ValueError(f"at most {MAX_METRICS} metric columns, got {len(metrics)}")
    if experiment is None:
        if parent is None:
            raise ValueError("give an experiment or a parent run")
        found = reads.fetch("ui_table_experiment_of", {"run": parent})
        experiment = str(found[0][0]) if found and found[0][0] else ""
    args = {"experiment": experiment}
    runs = reads.fetch("ui_table_runs", args)
    if parent is not None:
        runs = [r for r in runs if r[1] == parent]
    index = {str(r[0]): i for i, r in enumerate(runs)}
    n = len(runs)
    statuses = {str(r[0]): r[1:] for r in reads.fetch("ui_table_statuses", args)}
    beats = {str(r[0]): (int(r[1]), int(r[2])) for r in reads.fetch("ui_table_heartbeats", args)}
    status: list[str] = []
    error: list[str | None] = []
    end: list[int | None] = []
    activity: list[int] = []
    for r in runs:
        run_id, start = str(r[0]), int(r[4])
        beat, interval = beats.get(run_id, (0, 0))
        st = statuses.get(run_id)
        if st is None:
            shown, details, changed = "Running", None, start
        else:
            changed = int(st[2])
            shown, details = effective_status(str(st[0]), st[1] or None, changed, beat or None, interval,
                                              now_ms=now_ms, lost_after_s=lost_after_s)
        status.append(shown)
        error.append(details)
        end.append(changed if st is not None and st[0] != "Running" else None)
        activity.append(max(start, changed, beat))
    tags: dict[str, list[str | None]] = {}
    properties: dict[str, list[str | None]] = {}
    for run_id, kind, key, value, has_value in reads.fetch("ui_table_attributes", args):
        i = index.get(str(run_id))
        if i is None:
            continue
        target = tags if kind == "tag" else properties
        target.setdefault(str(key), [None] * n)[i] = str(value) if int(has_value) else ""
    names = [(str(r[0]), str(r[1]), int(r[2])) for r in reads.fetch("ui_table_metric_names", args)]
    if not metrics and default_metrics > 0:
        metrics = [n for n, kind, _runs in names if kind == "scalar"][:min(default_metrics, MAX_METRICS)]
    columns: dict[str, MetricColumns] = {}
    if metrics:
        params = {**in_array_params("names", metrics), "experiment": experiment}
        cells: dict[str, list[list[Any]]] = {m: [[None] * n for _ in range(5)] for m in metrics}
        for run_id, name, last, lo, hi, step, text, numeric in reads.fetch("ui_table_summaries", params):
            i = index.get(str(run_id))
            if i is None:
                continue
            c = cells[str(name)]
            has_numbers = int(numeric) > 0
            c[0][i] = last if has_numbers else None
            c[1][i] = lo if has_numbers else None
            c[2][i] = hi if has_numbers else None
            c[3][i] = int(step)
            c[4][i] = str(text) if text else None
        for m, (last_, lo_, hi_, step_, text_) in cells.items():
            columns[m] = MetricColumns(finite_or_none(last_), finite_or_none(lo_), finite_or_none(hi_), step_, text_)
    return RunTable(
        experiment=experiment,
        run_id=[str(r[0]) for r in runs],
        display_name=[str(r[2] or "") for r in runs],
        parent_run_id=[str(r[1] or "") for r in runs],
        kind=[str(r[3] or "") for r in runs],
        status=status,
        error=error,
        start_ms=[int(r[4]) for r in runs],
        end_ms=end,
        last_activity_ms=activity,
        tags=tags,
        properties=properties,
        metrics=columns,
        metric_names=names,
    )


QUERIES: Mapping[str, str] = MappingProxyType({
    "ui_table_experiments": _Q_EXPERIMENTS,
    "ui_table_all_statuses": _Q_ALL_STATUSES,
    "ui_table_all_heartbeats": _Q_ALL_HEARTBEATS,
    "ui_table_runs": _Q_RUNS,
    "ui_table_experiment_of": _Q_EXPERIMENT_OF,
    "ui_table_statuses": _Q_STATUSES,
    "ui_table_heartbeats": _Q_HEARTBEATS,
    "ui_table_attributes": _Q_ATTRIBUTES,
    "ui_table_metric_names": _Q_METRIC_NAMES,
    "ui_table_summaries": _Q_SUMMARIES,
})
"""This module's read queries by name (part of :data:`store.ui_queries.UI_QUERIES`)."""
