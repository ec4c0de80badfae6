"""Typed records to columnar rows, one column list per ClickHouse column.

:class:`RowBuffer` collects the rows of one batch for every table and hands
them out in :data:`WRITE_ORDER`: ``metric_names`` before the points (limit
counters are rebuilt from it), ``writer_progress`` last (it tells readers that
everything before it landed). Every row carries its dedup identity
(``writer_id``, ``seq`` and, for itemised events, the item's index in the
original message), so a re-delivered message produces identical keys that
``ReplacingMergeTree`` collapses.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Sequence, cast

import numpy as np

from schemas.records import (
    Column,
    Event,
    FileChunk,
    Heartbeat,
    ImageLogged,
    ListLogged,
    LogBatch,
    PropertiesSet,
    RowLogged,
    RunStarted,
    RunStatusChanged,
    ScalarBatch,
    TableLogged,
    TagsSet,
)

from store.columns import DictColumn

from .columns import scalar_columns
from .limits import NewName
from .validate import WHOLE_EVENT, Rejection, attribute_items

__all__ = ["TABLE_COLUMNS", "WRITE_ORDER", "RejectionRow", "RowBuffer", "group_rejections"]

TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "runs": ("run_id", "experiment", "parent_run_id", "display_name", "kind", "host", "pid", "start_ms",
             "writer_id", "seq"),
    "run_attributes": ("run_id", "experiment", "kind", "key", "value", "has_value", "created_ms", "writer_id", "seq"),
    "metric_names": ("run_id", "experiment", "name", "kind", "description", "first_ms"),
    "metric_scalars": ("experiment", "run_id", "name", "step", "time_ms", "value", "text", "is_text", "writer_id",
                       "seq", "idx", "created_ms"),
    "metric_rows": ("run_id", "experiment", "name", "kind", "created_ms", "writer_id", "seq", "row_idx",
                    "col_names", "col_numbers", "col_texts", "col_is_text"),
    "run_images": ("run_id", "experiment", "name", "description", "file_path", "content_type", "size", "created_ms",
                   "writer_id", "seq"),
    "run_files": ("run_id", "experiment", "path", "upload_id", "chunk_index", "chunk_count", "total_size", "sha256",
                  "content_type", "data", "created_ms", "writer_id", "seq"),
    "run_logs": ("run_id", "experiment", "time_ms", "stream", "logger", "level", "message", "exc_text", "writer_id",
                 "seq", "idx"),
    "run_heartbeats": ("run_id", "experiment", "created_ms", "interval_ms"),
    "run_status": ("run_id", "experiment", "status", "error_details", "created_ms", "writer_id", "seq"),
    "rejected_events": ("run_id", "experiment", "reason", "detail", "event_type", "source", "source_offset", "item",
                        "created_ms", "rejected_ms"),
    "writer_progress": ("writer_id", "run_id", "experiment", "seq", "updated_ms"),
}
"""The columns this worker writes, per table (the store's DDL may add defaulted ones)."""

WRITE_ORDER: tuple[str, ...] = tuple(TABLE_COLUMNS)
"""Tables in the order a batch is written."""


class RejectionRow(NamedTuple):
    """One ``rejected_events`` row: a reason for a group of items of one message."""

    reason: str
    detail: str
    item: int
    items: int
    """How many items of the message this row stands for."""


def group_rejections(event: Event | None, rejected: Mapping[int, Rejection]) -> list[RejectionRow]:
    """One row per (reason, metric name) in a message, keyed by its first item.

    A 51st metric name in a 1,000-point batch is one row ("1000 points"), not a
    thousand.
    """
    groups: dict[tuple[str, str], list[Rejection]] = {}
    for item in sorted(rejected):
        r = rejected[item]
        label = ""
        if isinstance(event, ScalarBatch) and item != WHOLE_EVENT:
            idx = int(scalar_columns(event).name_idx[item])
            if 0 <= idx < len(event.names):
                label = event.names[idx]
        groups.setdefault((r.reason, label), []).append(r)
    out = []
    for (reason, label), items in groups.items():
        first = items[0]
        detail = first.detail
        if len(items) > 1:
            unit = "points" if isinstance(event, ScalarBatch) else "items"
            detail = f"{detail} ({len(items)} {unit})"
        elif label and label not in detail:
            detail = f"{detail} (metric {label!r})"
        out.append(RejectionRow(reason, detail, first.item, len(items)))
    return out


def _cells(column: Column) -> tuple[list[float], list[str], list[int]]:
    texts = [""] * len(column.numbers)
    is_text = [0] * len(column.numbers)
    for pos, text in zip(column.text_pos, column.texts):
        texts[pos] = text
        is_text[pos] = 1
    return list(column.numbers), texts, is_text


def _array(values: np.ndarray) -> Sequence[Any]:
    # The sink seam is typed Sequence; numpy arrays behave as one (len, slices, iteration).
    return cast(Sequence[Any], values)


class _ScalarChunk(NamedTuple):
    """The kept points of one message, as arrays, and what every one of its rows shares."""

    experiment: str
    run_id: str
    writer_id: str
    seq: int
    created_ms: int
    names: list[str]
    name_idx: np.ndarray
    step: np.ndarray
    time_ms: np.ndarray
    value: np.ndarray
    idx: np.ndarray
    texts: dict[int, str]
    """Row (within the chunk) -> string value, for the rare string points."""


class _ScalarRows:
    """``metric_scalars`` rows of one batch: one chunk of arrays per message, concatenated once per flush.

    String columns come out as :class:`~store.columns.DictColumn` columns: each
    distinct experiment, run id, metric name and writer id of the batch is
    held once, whatever the number of rows.
    """

    def __init__(self) -> None:
        self.chunks: list[_ScalarChunk] = []
        self.rows = 0
        self._built: dict[str, Sequence[Any]] | None = None

    def clear(self) -> None:
        self.chunks.clear()
        self.rows = 0
        self._built = None

    def add(self, e: ScalarBatch, rejected: Mapping[int, Rejection]) -> int:
        """Add the points of ``e`` not in ``rejected``; returns how many."""
        cols = scalar_columns(e)
        n = len(cols.values)
        name_idx, step, time_ms, value = cols.name_idx, cols.steps, cols.time_ms, cols.values
        texts = dict(zip(e.text_pos, e.text_values))
        if rejected:
            keep = np.ones(n, dtype=bool)
            keep[[i for i in rejected if 0 <= i < n]] = False
            positions = np.flatnonzero(keep)
            name_idx, step, time_ms, value = name_idx[positions], step[positions], time_ms[positions], value[positions]
            idx = positions.astype(np.uint32)
            if texts:
                row_of = {p: r for r, p in enumerate(positions.tolist())}
                texts = {row_of[p]: t for p, t in texts.items() if p in row_of}
        else:
            idx = np.arange(n, dtype=np.uint32)
        k = len(idx)
        if k:
            self.chunks.append(_ScalarChunk(e.experiment, e.run_id, e.writer_id, e.seq, e.created_ms, e.names,
                                            name_idx, step, time_ms, value, idx, texts))
            self.rows += k
            self._built = None
        return k

    def columns(self) -> dict[str, Sequence[Any]]:
        """Every ``metric_scalars`` column of the batch (arrays and dictionary-coded strings), in table order."""
        if self._built is not None:
            return self._built
        chunks = self.chunks
        lengths = np.array([len(c.idx) for c in chunks], dtype=np.int64)

        def per_chunk(values: list[Any], dtype: Any) -> np.ndarray:
            return np.repeat(np.array(values, dtype=dtype), lengths)

        def strings(values: list[str]) -> DictColumn:
            table: dict[str, int] = {}
            codes = [table.setdefault(v, len(table)) for v in values]
            return DictColumn(list(table), per_chunk(codes, np.int32))

        names: dict[str, int] = {}
        name_codes = [np.array([names.setdefault(nm, len(names)) for nm in c.names], dtype=np.int32)[c.name_idx]
                      for c in chunks]
        n = self.rows
        text_table: dict[str, int] = {"": 0}
        text_codes = np.zeros(n, dtype=np.int32)
        is_text = np.zeros(n, dtype=np.uint8)
        start = 0
        for c in chunks:
            for row, text in c.texts.items():
                text_codes[start + row] = text_table.setdefault(text, len(text_table))
                is_text[start + row] = 1
            start += len(c.idx)
        built: dict[str, Sequence[Any]] = {
            "experiment": strings([c.experiment for c in chunks]),
            "run_id": strings([c.run_id for c in chunks]),
            "name": DictColumn(list(names), np.concatenate(name_codes)),
            "step": _array(np.concatenate([c.step for c in chunks])),
            "time_ms": _array(np.concatenate([c.time_ms for c in chunks])),
            "value": _array(np.concatenate([c.value for c in chunks])),
            "text": DictColumn(list(text_table), text_codes),
            "is_text": _array(is_text),
            "writer_id": strings([c.writer_id for c in chunks]),
            "seq": _array(per_chunk([c.seq for c in chunks], np.uint64)),
            "idx": _array(np.concatenate([c.idx for c in chunks])),
            "created_ms": _array(per_chunk([c.created_ms for c in chunks], np.int64)),
        }
        assert tuple(built) == TABLE_COLUMNS["metric_scalars"]
        self._built = built
        return built


class RowBuffer:
    """The rows of one batch, per table, plus what the worker reports after the flush.

    ``metric_scalars`` goes out as numpy arrays and
    :class:`~store.columns.DictColumn` strings (the store encodes them
    directly); the other tables as lists.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, list[Any]]] = {
            t: {c: [] for c in cols} for t, cols in TABLE_COLUMNS.items() if t != "metric_scalars"
        }
        self._scalar_rows = _ScalarRows()
        self._progress: dict[tuple[str, str], tuple[str, int]] = {}
        self._marks: dict[str, list[tuple[int, int]]] = {t: [] for t in TABLE_COLUMNS}
        self.owner = -1
        """Who the rows added next belong to (the worker's index of the message); see :meth:`owner_ranges`."""
        self.rows = 0
        self.created_ms: list[int] = []
        """Creation times of the events in this batch (for the end-to-end latency)."""
        self.events = 0

    def __len__(self) -> int:
        return self.rows

    def clear(self) -> None:
        """Forget everything (after a successful flush, or when the batch is given up)."""
        for cols in self._tables.values():
            for values in cols.values():
                values.clear()
        self._scalar_rows.clear()
        self._progress.clear()
        for marks in self._marks.values():
            marks.clear()
        self.rows = 0
        self.events = 0
        self.created_ms.clear()

    def _length(self, table: str) -> int:
        if table == "metric_scalars":
            return self._scalar_rows.rows
        return len(self._tables[table][TABLE_COLUMNS[table][0]])

    def _lengths(self) -> dict[str, int]:
        return {t: self._length(t) for t in TABLE_COLUMNS}

    def _mark(self, before: Mapping[str, int]) -> None:
        for table, n0 in before.items():
            n1 = self._length(table)
            if n1 > n0:
                self._marks[table].append((self.owner, n1))

    def owner_ranges(self, table: str) -> list[tuple[int, int, int]]:
        """``(owner, start, end)`` row ranges of ``table``, in order (to isolate one message's rows)."""
        out = []
        start = 0
        for owner, end in self._marks[table]:
            out.append((owner, start, end))
            start = end
        return out

    def progress(self, event: Event) -> None:
        """Record that ``event`` was processed (accepted or rejected) for ``writer_progress``."""
        key = (event.writer_id, event.run_id)
        seen = self._progress.get(key)
        if seen is None or event.seq > seen[1]:
            self._progress[key] = (event.experiment, event.seq)

    def reject(self, *, run_id: str, experiment: str, reason: str, detail: str, event_type: str, source: str,
               source_offset: int, item: int, created_ms: int, rejected_ms: int) -> None:
        """Add one ``rejected_events`` row."""
        before = {"rejected_events": self._length("rejected_events")}
        t = self._tables["rejected_events"]
        t["run_id"].append(run_id)
        t["experiment"].append(experiment)
        t["reason"].append(reason)
        t["detail"].append(detail)
        t["event_type"].append(event_type)
        t["source"].append(source)
        t["source_offset"].append(source_offset)
        t["item"].append(item)
        t["created_ms"].append(created_ms)
        t["rejected_ms"].append(rejected_ms)
        self.rows += 1
        self._mark(before)

    def add(self, event: Event, rejected: Mapping[int, Rejection], new_names: Sequence[NewName]) -> None:
        """Add the accepted part of ``event`` (items in ``rejected`` are left out)."""
        before = self._lengths()
        try:
            self._add(event, rejected, new_names)
        finally:
            self._mark(before)

    def _add(self, event: Event, rejected: Mapping[int, Rejection], new_names: Sequence[NewName]) -> None:
        self.events += 1
        self.created_ms.append(event.created_ms)
        self.progress(event)
        for nn in new_names:
            self._metric_name(event, nn)
        if isinstance(event, ScalarBatch):
            self._scalars(event, rejected)
        elif isinstance(event, (ListLogged, RowLogged, TableLogged)):
            self._metric_rows(event)
        elif isinstance(event, LogBatch):
            self._logs(event, rejected)
        elif isinstance(event, RunStarted):
            self._run_started(event, rejected)
        elif isinstance(event, (TagsSet, PropertiesSet)):
            self._attributes(event, rejected)
        elif isinstance(event, RunStatusChanged):
            self._status(event, event.status, event.error_details or "")
        elif isinstance(event, Heartbeat):
            t = self._tables["run_heartbeats"]
            self._append(t, run_id=event.run_id, experiment=event.experiment, created_ms=event.created_ms,
                         interval_ms=event.interval_ms)
        elif isinstance(event, ImageLogged):
            t = self._tables["run_images"]
            self._append(t, run_id=event.run_id, experiment=event.experiment, name=event.name,
                         description=event.description, file_path=event.file_path, content_type=event.content_type,
                         size=event.size, created_ms=event.created_ms, writer_id=event.writer_id, seq=event.seq)
        elif isinstance(event, FileChunk):
            t = self._tables["run_files"]
            self._append(t, run_id=event.run_id, experiment=event.experiment, path=event.path,
                         upload_id=event.upload_id, chunk_index=event.chunk_index, chunk_count=event.chunk_count,
                         total_size=event.total_size, sha256=event.sha256, content_type=event.content_type,
                         data=event.data, created_ms=event.created_ms, writer_id=event.writer_id, seq=event.seq)

    def tables(self, now_ms: int) -> Iterator[tuple[str, Mapping[str, Sequence[Any]]]]:
        """Non-empty tables in write order; ``writer_progress`` (built here, stamped ``now_ms``) comes last."""
        wp = self._tables["writer_progress"]
        for values in wp.values():
            values.clear()
        for (writer_id, run_id), (experiment, seq) in self._progress.items():
            wp["writer_id"].append(writer_id)
            wp["run_id"].append(run_id)
            wp["experiment"].append(experiment)
            wp["seq"].append(seq)
            wp["updated_ms"].append(now_ms)
        for table in WRITE_ORDER:
            if table == "metric_scalars":
                if self._scalar_rows.rows:
                    yield table, self._scalar_rows.columns()
                continue
            cols = self._tables[table]
            if cols[TABLE_COLUMNS[table][0]]:
                yield table, cols

    # -- one method per event shape ------------------------------------------------------------

    def _append(self, t: dict[str, list[Any]], **row: Any) -> None:
        for k, v in row.items():
            t[k].append(v)
        self.rows += 1

    def _metric_name(self, event: Event, nn: NewName) -> None:
        self._append(self._tables["metric_names"], run_id=event.run_id, experiment=event.experiment, name=nn.name,
                     kind=nn.kind, description=nn.description, first_ms=event.created_ms)

    def _status(self, event: Event, status: str, error_details: str) -> None:
        self._append(self._tables["run_status"], run_id=event.run_id, experiment=event.experiment, status=status,
                     error_details=error_details, created_ms=event.created_ms, writer_id=event.writer_id,
                     seq=event.seq)

    def _run_started(self, e: RunStarted, rejected: Mapping[int, Rejection]) -> None:
        self._append(self._tables["runs"], run_id=e.run_id, experiment=e.experiment,
                     parent_run_id=e.parent_run_id or "", display_name=e.display_name or "", kind=e.kind,
                     host=e.host, pid=e.pid, start_ms=e.created_ms, writer_id=e.writer_id, seq=e.seq)
        self._status(e, "Running", "")
        self._attributes(e, rejected)

    def _attributes(self, e: Event, rejected: Mapping[int, Rejection]) -> None:
        t = self._tables["run_attributes"]
        for item, (kind, key, value) in enumerate(attribute_items(e)):
            if item in rejected:
                continue
            self._append(t, run_id=e.run_id, experiment=e.experiment, kind=kind, key=key, value=value or "",
                         has_value=0 if value is None else 1, created_ms=e.created_ms, writer_id=e.writer_id,
                         seq=e.seq)

    def _scalars(self, e: ScalarBatch, rejected: Mapping[int, Rejection]) -> None:
        self.rows += self._scalar_rows.add(e, rejected)

    def _metric_rows(self, e: ListLogged | RowLogged | TableLogged) -> None:
        t = self._tables["metric_rows"]
        if isinstance(e, ListLogged):
            numbers, texts, is_text = _cells(e.values)
            for i in range(len(numbers)):
                self._append(t, run_id=e.run_id, experiment=e.experiment, name=e.name, kind="list",
                             created_ms=e.created_ms, writer_id=e.writer_id, seq=e.seq, row_idx=i,
                             col_names=[e.name], col_numbers=[numbers[i]], col_texts=[texts[i]],
                             col_is_text=[is_text[i]])
            return
        kind = "row" if isinstance(e, RowLogged) else "table"
        names = [c.name for c in e.columns]
        cells = [_cells(c) for c in e.columns]
        for r in range(len(e.columns[0].numbers)):
            self._append(t, run_id=e.run_id, experiment=e.experiment, name=e.name, kind=kind,
                         created_ms=e.created_ms, writer_id=e.writer_id, seq=e.seq, row_idx=r,
                         col_names=list(names), col_numbers=[c[0][r] for c in cells],
                         col_texts=[c[1][r] for c in cells], col_is_text=[c[2][r] for c in cells])

    def _logs(self, e: LogBatch, rejected: Mapping[int, Rejection]) -> None:
        t = self._tables["run_logs"]
        for i, line in enumerate(e.lines):
            if i in rejected:
                continue
            self._append(t, run_id=e.run_id, experiment=e.experiment, time_ms=line.time_ms, stream=line.stream,
                         logger=line.logger, level=line.level, message=line.message, exc_text=line.exc_text or "",
                         writer_id=e.writer_id, seq=e.seq, idx=i)
