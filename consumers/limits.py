"""Per-run limits that need memory: metric names, rows per name, tag and property counts.

A run's events all carry the run id as their Kafka key, so one worker owns a
run at a time; it keeps the run's counters in memory. When a worker first sees
a run (at start, after a rebalance, or after the counters were dropped) it
rebuilds them from ClickHouse, so "the first 50 names are kept" holds however
the partitions move:

- names and their kinds: ``metric_names`` (written before the points of a flush);
- rows per name: ``metric_scalars`` / ``metric_rows`` / ``run_images`` (``FINAL``);
- tag and property keys: ``run_attributes``;
- how far each writer got: ``writer_progress`` (the highest seq of each
  writer whose messages are all stored or dead-lettered; written last in a flush).

Counting is by message identity: a message whose seq is at or below its
writer's progress for the run (loaded, or reached in this batch) was handled
before — it is a re-delivery after a crash or a rebalance, or a replayed
outbox — and :meth:`RunLimiter.first_time` says so, so the worker skips it:
nothing is counted, written or rejected twice, and the decision taken the
first time stands. A writer's messages for one run reach ingest in seq order
(one partition, or one spool segment chain), which is what makes the highest
seq a complete record.

Limits are applied item by item: one over-the-limit name in a ``ScalarBatch``
rejects that name's points only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

from schemas.limits import RunLimits
from schemas.records import (
    Event,
    ImageLogged,
    ListLogged,
    PropertiesSet,
    RowLogged,
    RunStarted,
    ScalarBatch,
    TableLogged,
    TagsSet,
)

from .columns import scalar_columns
from .errors import RunLimitExceeded
from .validate import Checked, attribute_items

__all__ = ["RunCounters", "NewName", "CounterLoader", "StoreCounterLoader", "RunLimiter", "metric_kind"]


@dataclass(slots=True)
class RunCounters:
    """What one run has used so far."""

    names: dict[str, str] = field(default_factory=dict)
    """Accepted metric names -> kind, in acceptance order."""
    rows: dict[str, int] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    properties: set[str] = field(default_factory=set)
    progress: dict[str, int] = field(default_factory=dict)
    """Writer id -> the highest seq of that writer this run has handled (stored or rejected)."""


class NewName(NamedTuple):
    """A metric name accepted for the first time in a run (becomes a ``metric_names`` row)."""

    name: str
    kind: str
    description: str


class CounterLoader(Protocol):
    """Rebuilds counters of runs this worker has not seen yet."""

    def load(self, runs: Sequence[tuple[str, str]]) -> Mapping[str, RunCounters]:
        """``runs`` are ``(experiment, run_id)`` pairs; returns counters by run id (missing = a new run)."""
        ...


class _Runner(Protocol):
    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]: ...


class StoreCounterLoader:
    """Loads counters with a few ``QueryRunner`` queries per batch of unseen runs (raises ``StoreError``)."""

    _NAMES = (
        "SELECT run_id, name, any(kind) AS k, min(first_ms) AS f FROM {db}.metric_names "
        "WHERE has({runs:Array(String)}, run_id) GROUP BY run_id, name ORDER BY run_id, f, name"
    )
    # The range on experiment (the sorting key's first column) lets the server skip every other experiment's
    # parts; has() alone reads the whole table with FINAL (6.5 CPU-seconds for a new run beside 10M points).
    _SCALAR_ROWS = (
        "SELECT run_id, name, count() FROM {db}.metric_scalars FINAL "
        "WHERE experiment >= {first:String} AND experiment <= {last:String} "
        "AND has({experiments:Array(String)}, experiment) AND has({runs:Array(String)}, run_id) "
        "GROUP BY run_id, name"
    )
    _OTHER_ROWS = (
        "SELECT run_id, name, count() FROM {db}.metric_rows FINAL WHERE has({runs:Array(String)}, run_id) "
        "GROUP BY run_id, name "
        "UNION ALL "
        "SELECT run_id, name, count() FROM {db}.run_images FINAL WHERE has({runs:Array(String)}, run_id) "
        "GROUP BY run_id, name"
    )
    _ATTRIBUTES = (
        "SELECT DISTINCT run_id, kind, key FROM {db}.run_attributes WHERE has({runs:Array(String)}, run_id)"
    )

    _PROGRESS = (
        "SELECT run_id, writer_id, max(seq) FROM {db}.writer_progress WHERE has({runs:Array(String)}, run_id) "
        "GROUP BY run_id, writer_id"
    )

    def __init__(self, runner: _Runner) -> None:
        self._runner = runner

    def load(self, runs: Sequence[tuple[str, str]]) -> Mapping[str, RunCounters]:
        if not runs:
            return {}
        run_ids = sorted({r for _, r in runs})
        experiments = sorted({e for e, _ in runs})
        out: dict[str, RunCounters] = {}

        def counters(run_id: str) -> RunCounters:
            c = out.get(run_id)
            if c is None:
                c = out[run_id] = RunCounters()
            return c

        q = self._runner.query
        for run_id, name, kind, _first in q(self._NAMES, {"runs": run_ids}):
            counters(run_id).names.setdefault(name, kind)
        for run_id, name, count in q(self._SCALAR_ROWS, {"runs": run_ids, "experiments": experiments,
                                                          "first": experiments[0], "last": experiments[-1]}):
            rows = counters(run_id).rows
            rows[name] = rows.get(name, 0) + int(count)
        for run_id, name, count in q(self._OTHER_ROWS, {"runs": run_ids}):
            rows = counters(run_id).rows
            rows[name] = rows.get(name, 0) + int(count)
        for run_id, kind, key in q(self._ATTRIBUTES, {"runs": run_ids}):
            c = counters(run_id)
            (c.tags if kind == "tag" else c.properties).add(key)
        for run_id, writer_id, seq in q(self._PROGRESS, {"runs": run_ids}):
            counters(run_id).progress[writer_id] = int(seq)
        return out


def metric_kind(event: Event) -> str | None:
    """The ``metric_names.kind`` an event logs, or None for non-metric events."""
    if isinstance(event, ScalarBatch):
        return "scalar"
    if isinstance(event, ListLogged):
        return "list"
    if isinstance(event, RowLogged):
        return "row"
    if isinstance(event, TableLogged):
        return "table"
    if isinstance(event, ImageLogged):
        return "image"
    return None


class RunLimiter:
    """Applies the per-run limits to checked events, keeping counters per run (LRU-bounded)."""

    def __init__(self, limits: RunLimits, loader: CounterLoader, *, max_runs: int = 10_000) -> None:
        self.limits = limits
        self._loader = loader
        self._max_runs = max_runs
        self._runs: OrderedDict[str, RunCounters] = OrderedDict()

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def prepare(self, events: Iterable[Event]) -> None:
        """Load counters of every run among ``events`` not in memory yet (one round of queries).

        Raises the loader's ``StoreError`` when ClickHouse cannot answer; nothing changes then.
        """
        unseen: dict[str, str] = {}
        for event in events:
            if event.run_id not in self._runs:
                unseen.setdefault(event.run_id, event.experiment)
        if not unseen:
            return
        loaded = self._loader.load([(e, r) for r, e in unseen.items()])
        for run_id in unseen:
            self._runs[run_id] = loaded.get(run_id) or RunCounters()

    def forget_all(self) -> None:
        """Drop every counter (after a rebalance, or when buffered work was discarded)."""
        self._runs.clear()

    def trim(self) -> None:
        """Drop the least recently used runs beyond the bound; call only when nothing is buffered."""
        while len(self._runs) > self._max_runs:
            self._runs.popitem(last=False)

    def _counters(self, run_id: str) -> RunCounters:
        c = self._runs.get(run_id)
        if c is None:  # prepare() was skipped: treat as a new run rather than fail
            c = self._runs[run_id] = RunCounters()
        else:
            self._runs.move_to_end(run_id)
        return c

    def first_time(self, event: Event) -> bool:
        """True the first time the run handles ``event`` (by its writer and seq), and remember it.

        False for a re-delivery: its writer's progress for the run (stored, or
        reached in the current batch) is already at or past its seq, so it was
        stored or dead-lettered before and must not be counted again.
        """
        c = self._counters(event.run_id)
        if event.seq <= c.progress.get(event.writer_id, 0):
            return False
        c.progress[event.writer_id] = event.seq
        return True

    def apply(self, checked: Checked) -> list[NewName]:
        """Reject what goes over a limit; returns names accepted for the first time.

        Raises :class:`RunLimitExceeded` when a single-item event (a list, row,
        table or image) is over a limit; counters are then unchanged.
        """
        event = checked.event
        c = self._counters(event.run_id)
        if isinstance(event, ScalarBatch):
            return self._scalars(checked, event, c)
        if isinstance(event, (TagsSet, PropertiesSet, RunStarted)):
            self._attributes(checked, c)
            return []
        kind = metric_kind(event)
        if kind is None:
            return []
        assert isinstance(event, (ListLogged, RowLogged, TableLogged, ImageLogged))
        if isinstance(event, ListLogged):
            rows = len(event.values.numbers)
        elif isinstance(event, TableLogged):
            rows = len(event.columns[0].numbers)
        else:
            rows = 1
        new = self._admit_name(c, event.name, kind)
        used = c.rows.get(event.name, 0)
        if used + rows > self.limits.max_rows_per_metric:
            raise RunLimitExceeded("too_many_rows", f"metric {event.name!r} would have {used + rows} rows "
                                                    f"(limit {self.limits.max_rows_per_metric})")
        c.rows[event.name] = used + rows
        if new:
            c.names[event.name] = kind
            return [NewName(event.name, kind, event.description)]
        return []

    def _admit_name(self, c: RunCounters, name: str, kind: str) -> bool:
        """True when ``name`` is new and fits; raises when it does not fit."""
        known = c.names.get(name)
        if known is not None:
            if known != kind:
                raise RunLimitExceeded("metric_kind_conflict", f"metric {name!r} was logged as {known}, not {kind}")
            return False
        if len(c.names) >= self.limits.max_metric_names:
            raise RunLimitExceeded("too_many_metric_names", f"metric {name!r} would be name number "
                                                            f"{len(c.names) + 1} (limit {self.limits.max_metric_names})")
        return True

    def _scalars(self, checked: Checked, event: ScalarBatch, c: RunCounters) -> list[NewName]:
        new_names: list[NewName] = []
        # Decide once per name index (counted in numpy); list a name's points only when some must be rejected.
        name_idx = scalar_columns(event).name_idx
        keep = np.ones(len(name_idx), dtype=bool)
        if checked.rejected:
            keep[list(checked.rejected)] = False
        in_range = keep & (name_idx >= 0) & (name_idx < len(event.names))
        counts = np.bincount(name_idx[in_range], minlength=len(event.names))

        def points_of(idx: int) -> list[int]:
            points: list[int] = np.flatnonzero((name_idx == idx) & keep).tolist()
            return points

        max_rows = self.limits.max_rows_per_metric
        for idx, count in ((int(i), int(counts[i])) for i in np.flatnonzero(counts)):
            name = event.names[idx]
            try:
                new = self._admit_name(c, name, "scalar")
            except RunLimitExceeded as exc:
                for point in points_of(idx):
                    checked.reject(point, exc)
                continue
            if new:
                c.names[name] = "scalar"
                new_names.append(NewName(name, "scalar", event.descriptions[idx]))
            used = c.rows.get(name, 0)
            room = max(max_rows - used, 0)
            if count > room:
                over = RunLimitExceeded("too_many_rows", f"metric {name!r} is at its limit of {max_rows} rows")
                for point in points_of(idx)[room:]:
                    checked.reject(point, over)
            c.rows[name] = used + min(count, room)
        return new_names

    def _attributes(self, checked: Checked, c: RunCounters) -> None:
        for item, (kind, key, _value) in enumerate(attribute_items(checked.event)):
            if not checked.keeps(item):
                continue
            keys, limit = (c.tags, self.limits.max_tags) if kind == "tag" else (c.properties, self.limits.max_properties)
            if key in keys:
                continue
            if len(keys) >= limit:
                checked.reject(item, RunLimitExceeded(
                    "too_many_tags" if kind == "tag" else "too_many_properties",
                    f"{kind} {key!r} would be number {len(keys) + 1} (limit {limit})"))
                continue
            keys.add(key)
