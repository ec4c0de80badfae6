"""Read-your-writes: what this server wrote that the store may not show yet.

The MLflow client creates a run and reads it back at once; logs metrics and
reads their history at once. Writes travel emitter -> spool/Kafka -> ingest ->
ClickHouse/chDB, about half a second. So the backend records every write here
too, and merges it into what the store answers until the store shows it.

Every recorded item carries a *mark* (a counter of this overlay). The backend
prunes a run in the background: it notes ``mark()``, flushes the emitter,
reads the emitter's last seq for the run, and once the store's visible seq for
the server's writer has reached it, calls ``prune(run_id, mark)`` — everything
recorded before that mark is in the store, so it is dropped here.

Memory is bounded (points and file bytes); past a bound the oldest pending
items of the biggest run are forgotten here (they are still delivered; reads
of them may lag until ingest catches up). ``SeenPoints`` is the separate,
time-windowed memory that makes metric writes idempotent under the client's
retries.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .mlflow_backend import MetricColumns, MetricPoint, RunInfo, RunView

__all__ = ["Overlay", "SeenPoints", "latest_key"]


def latest_key(p: MetricPoint) -> tuple[int, int, float]:
    """MLflow's "latest value" order: step, then timestamp, then value (NaN lowest)."""
    return p.step, p.timestamp, (-math.inf if math.isnan(p.value) else p.value)


_Identity = tuple[str, float | str, int, int]


def _identities(cols: MetricColumns) -> list[_Identity]:
    # Each point's fields as a tuple, a NaN value as "NaN" (NaN is never equal to itself).
    idents: list[_Identity] = list(zip(cols.keys, cols.values, cols.timestamps, cols.steps))
    if any(v != v for v in cols.values):
        idents = [(k, "NaN", t, s) if v != v else (k, v, t, s) for k, v, t, s in idents]
    return idents


@dataclass
class _Pending:
    info: tuple[int, RunInfo] | None = None
    params: dict[str, tuple[int, str]] = field(default_factory=dict)
    tags: dict[str, tuple[int, str]] = field(default_factory=dict)
    deleted_tags: dict[str, int] = field(default_factory=dict)
    points: list[tuple[int, MetricColumns]] = field(default_factory=list)  # (mark, one write's points)
    files: dict[str, tuple[int, int, bytes | None]] = field(default_factory=dict)  # path -> (mark, size, bytes)

    def empty(self) -> bool:
        return not (self.info or self.params or self.tags or self.deleted_tags or self.points or self.files)


class Overlay:
    """Pending writes per run, merged into store answers. Thread-safe."""

    def __init__(self, *, max_points: int = 2_000_000, max_file_bytes: int = 256 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._mark = 0
        self._runs: dict[str, _Pending] = {}
        self._max_points = max_points
        self._max_file_bytes = max_file_bytes
        self._points = 0
        self._file_bytes = 0

    def mark(self) -> int:
        """The mark of the last item recorded so far."""
        with self._lock:
            return self._mark

    def _next(self, run_id: str) -> tuple[int, _Pending]:
        self._mark += 1
        return self._mark, self._runs.setdefault(run_id, _Pending())

    # -- recording ---------------------------------------------------------------------
    def record_info(self, info: RunInfo) -> None:
        """The run's attributes as this server just set them (created, status, name)."""
        with self._lock:
            mark, pending = self._next(info.run_id)
            pending.info = (mark, info)

    def record_batch(self, run_id: str, metrics: MetricColumns, params: Mapping[str, str],
                     tags: Mapping[str, str]) -> None:
        """Points (kept as the write's columns, one chunk), params and tags just sent."""
        with self._lock:
            mark, pending = self._next(run_id)
            for key, value in params.items():
                pending.params[key] = (mark, value)
            for key, value in tags.items():
                pending.tags[key] = (mark, value)
                pending.deleted_tags.pop(key, None)
            if len(metrics):
                pending.points.append((mark, metrics))
                self._points += len(metrics)
                if self._points > self._max_points:
                    self._shed_points()

    def record_tag_deleted(self, run_id: str, key: str) -> None:
        """A tag just removed."""
        with self._lock:
            mark, pending = self._next(run_id)
            pending.tags.pop(key, None)
            pending.deleted_tags[key] = mark

    def record_file(self, run_id: str, path: str, data: bytes) -> None:
        """A file just uploaded; its bytes are kept while the bound allows."""
        with self._lock:
            mark, pending = self._next(run_id)
            old = pending.files.get(path)
            if old is not None and old[2] is not None:
                self._file_bytes -= len(old[2])
            keep = self._file_bytes + len(data) <= self._max_file_bytes
            pending.files[path] = (mark, len(data), data if keep else None)
            if keep:
                self._file_bytes += len(data)

    def _shed_points(self) -> None:
        # Forget the oldest chunks, half the points or more, of the biggest run (still delivered, only not overlaid).
        def count(chunks: list[tuple[int, MetricColumns]]) -> int:
            return sum(len(c) for _, c in chunks)

        chunks = max((p.points for p in self._runs.values()), key=count)
        target, dropped, n = max(1, count(chunks) // 2), 0, 0
        while n < len(chunks) and dropped < target:
            dropped += len(chunks[n][1])
            n += 1
        del chunks[:n]
        self._points -= dropped

    # -- reading -----------------------------------------------------------------------
    def pending_runs(self) -> list[str]:
        """Runs with something not yet confirmed visible."""
        with self._lock:
            return list(self._runs)

    def created_runs(self, experiment_ids: Iterable[str]) -> list[RunInfo]:
        """Run infos recorded here for these experiments (new runs the store may not list yet)."""
        wanted = set(experiment_ids)
        with self._lock:
            return [p.info[1] for p in self._runs.values() if p.info is not None and p.info[1].experiment_id in wanted]

    def merge_run(self, run_id: str, stored: RunView | None) -> RunView | None:
        """``stored`` with this server's pending writes applied (None if neither knows the run)."""
        with self._lock:
            pending = self._runs.get(run_id)
            if pending is None:
                return stored
            info = pending.info[1] if pending.info is not None else (stored.info if stored else None)
            if info is None:
                return stored
            params = dict(stored.params) if stored else {}
            params.update({k: v for k, (_, v) in pending.params.items()})
            tags = dict(stored.tags) if stored else {}
            tags.update({k: v for k, (_, v) in pending.tags.items()})
            for key in pending.deleted_tags:
                tags.pop(key, None)
            latest: dict[str, MetricPoint] = {m.key: m for m in stored.metrics} if stored else {}
            for _, chunk in pending.points:
                for point in chunk.points():
                    old = latest.get(point.key)
                    if old is None or latest_key(point) > latest_key(old):
                        latest[point.key] = point
        return RunView(info=info, metrics=list(latest.values()), params=params, tags=tags)

    def pending_points(self, run_id: str, key: str) -> list[MetricPoint]:
        """Points of ``key`` not yet confirmed visible."""
        with self._lock:
            pending = self._runs.get(run_id)
            if pending is None:
                return []
            return [MetricPoint(k, v, t, s) for _, c in pending.points
                    for k, v, t, s in zip(c.keys, c.values, c.timestamps, c.steps) if k == key]

    def pending_files(self, run_id: str) -> dict[str, tuple[int, bytes | None]]:
        """Files not yet confirmed visible: path -> (size, bytes or None if over the memory bound)."""
        with self._lock:
            pending = self._runs.get(run_id)
            return {} if pending is None else {p: (size, data) for p, (_, size, data) in pending.files.items()}

    # -- pruning -----------------------------------------------------------------------
    def prune(self, run_id: str, upto: int) -> None:
        """Drop what was recorded for ``run_id`` at or before mark ``upto`` (the store shows it now)."""
        with self._lock:
            pending = self._runs.get(run_id)
            if pending is None:
                return
            if pending.info is not None and pending.info[0] <= upto:
                pending.info = None
            pending.params = {k: v for k, v in pending.params.items() if v[0] > upto}
            pending.tags = {k: v for k, v in pending.tags.items() if v[0] > upto}
            pending.deleted_tags = {k: m for k, m in pending.deleted_tags.items() if m > upto}
            kept = [(m, c) for m, c in pending.points if m > upto]
            self._points -= sum(len(c) for m, c in pending.points if m <= upto)
            pending.points = kept
            files = {}
            for path, (mark, size, data) in pending.files.items():
                if mark > upto:
                    files[path] = (mark, size, data)
                elif data is not None:
                    self._file_bytes -= len(data)
            pending.files = files
            if pending.empty():
                del self._runs[run_id]


class SeenPoints:
    """Metric points written recently, per run: a repeat (the client's retry) is dropped.

    Identities are kept for ``window_s`` (the client's retries span about four
    minutes) and at most ``max_points`` in all; reads also deduplicate, so
    forgetting only costs a duplicate row in runstream's own view.
    """

    def __init__(self, *, window_s: float = 900.0, max_points: int = 1_000_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._window_s = window_s
        self._max_points = max_points
        self._clock = clock
        self._runs: OrderedDict[str, tuple[float, set[_Identity]]] = OrderedDict()
        self._count = 0

    def fresh(self, run_id: str, points: MetricColumns) -> MetricColumns:
        """The points of ``points`` not seen before for ``run_id`` (and not repeated inside ``points``); remembers them.

        The usual write is all new: one set of its identities, checked disjoint
        from what was seen, and the same columns come back (no copy).
        """
        idents = _identities(points)
        batch = set(idents)
        now = self._clock()
        with self._lock:
            entry = self._runs.pop(run_id, None)
            seen = entry[1] if entry is not None else set()
            if len(batch) == len(idents) and seen.isdisjoint(batch):
                seen |= batch
                out = points
            else:
                rows = []
                for row, ident in enumerate(idents):
                    if ident not in seen:
                        seen.add(ident)
                        rows.append(row)
                out = points if len(rows) == len(idents) else points.take(rows)
            self._count += len(out)
            self._runs[run_id] = (now, seen)  # most recently used last
            self._evict(now)
            return out

    def _evict(self, now: float) -> None:
        while self._runs:
            run_id, (touched, seen) = next(iter(self._runs.items()))
            if touched >= now - self._window_s and self._count <= self._max_points:
                return
            if len(self._runs) == 1 and touched >= now - self._window_s:
                return  # one huge live run: keep it rather than lose retry protection
            del self._runs[run_id]
            self._count -= len(seen)
