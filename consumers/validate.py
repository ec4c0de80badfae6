"""Per-event rules: a chain of checks with one signature, ``check(checked, limits) -> None``.

A check either raises :class:`InvalidEvent` (the whole event is rejected), or
marks single items rejected with :meth:`Checked.reject` (one bad metric name in
a ``ScalarBatch`` rejects only that name's points), or replaces
``checked.event`` with a normalised copy (e.g. over-long error details are
cut, so a run's final status is never lost to a long traceback).

Items are numbered the same way every time a message is re-delivered:
``ScalarBatch`` point index; ``LogBatch`` line index; for tags and properties
the entry's position (``RunStarted``: tags first, then properties). Stateful,
per-run limits (names, rows, tag counts) live in :mod:`consumers.limits`.

Reasons are short tokens from :data:`REASONS` (a metrics label).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, NamedTuple, Sequence

import numpy as np

from schemas.limits import RunLimits
from schemas.records import (
    RUN_STATUSES,
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

from .columns import points_of, scalar_columns
from .errors import InvalidEvent

__all__ = [
    "REASONS",
    "WHOLE_EVENT",
    "Rejection",
    "Checked",
    "Check",
    "CHECKS",
    "validate",
    "attribute_items",
]

WHOLE_EVENT = -1
"""``Rejection.item`` of a rejection that covers the whole message."""

REASONS = frozenset({
    # envelope and ids
    "bad_envelope", "missing_id", "id_too_long", "key_mismatch",
    # run lifecycle
    "bad_status", "bad_heartbeat",
    # attributes
    "empty_attribute_key", "attribute_key_too_long", "attribute_value_too_long",
    # metrics
    "malformed_batch", "bad_name_index", "empty_metric_name", "metric_name_too_long", "value_too_long",
    "too_many_columns", "bad_column", "empty_column_name", "column_name_too_long", "metric_kind_conflict",
    # images, files, logs
    "image_too_large", "bad_image", "file_too_large", "bad_file_chunk", "log_line_too_long", "bad_log_line",
    # per-run limits (RunLimitExceeded)
    "too_many_metric_names", "too_many_rows", "too_many_tags", "too_many_properties",
    # a bug in a check: the event is dead-lettered rather than stopping the partition
    "internal_error",
    # ClickHouse refused the message's rows as invalid (not retriable) after validation passed
    "sink_rejected",
})
"""Every reason validation and limits can give (decode failures use ``DecodeError.REASONS``)."""


class Rejection(NamedTuple):
    """One rejected item (or the whole event when ``item == WHOLE_EVENT``)."""

    reason: str
    detail: str
    item: int


class Checked:
    """An event travelling down the chain, and the items rejected so far."""

    __slots__ = ("event", "rejected")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.rejected: dict[int, Rejection] = {}

    def reject(self, item: int, error: InvalidEvent) -> None:
        """Mark one item rejected; the first reason given for an item wins."""
        if item not in self.rejected:
            self.rejected[item] = Rejection(error.reason, error.detail, item)

    def keeps(self, item: int) -> bool:
        """True while ``item`` has not been rejected."""
        return item not in self.rejected


Check = Callable[[Checked, RunLimits], None]
"""A link of the chain."""

_WRITER_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LOG_STREAMS = frozenset({"stdout", "stderr", "logging"})
_MAX_DESCRIPTION = 1_000
_MAX_PATH = 1_024


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _check_id(value: str | None, what: str, limits: RunLimits, *, required: bool) -> None:
    if not value:
        if required:
            raise InvalidEvent("missing_id", f"{what} is empty")
        return
    if len(value) > limits.max_id_length:
        raise InvalidEvent("id_too_long", f"{what} has {len(value)} characters (limit {limits.max_id_length})")


def check_envelope(checked: Checked, limits: RunLimits) -> None:
    """writer id, seq, run id, experiment, created_ms."""
    e = checked.event
    if not _WRITER_ID.fullmatch(e.writer_id):
        raise InvalidEvent("bad_envelope", f"writer_id {_short(e.writer_id)!r} is not 1-64 letters, digits or '_'")
    if e.seq < 1:
        raise InvalidEvent("bad_envelope", f"seq {e.seq} < 1")
    if e.created_ms < 0:
        raise InvalidEvent("bad_envelope", f"created_ms {e.created_ms} < 0")
    _check_id(e.run_id, "run id", limits, required=True)
    _check_id(e.experiment, "experiment name", limits, required=True)


def attribute_items(event: Event) -> list[tuple[str, str, str | None]]:
    """``(kind, key, value)`` of an event's tags and properties, in item order."""
    if isinstance(event, RunStarted):
        return [("tag", k, v) for k, v in event.tags.items()] + [
            ("property", k, v) for k, v in event.properties.items()
        ]
    if isinstance(event, TagsSet):
        return [("tag", k, v) for k, v in event.tags.items()]
    if isinstance(event, PropertiesSet):
        return [("property", k, v) for k, v in event.properties.items()]
    return []


def check_run_started(checked: Checked, limits: RunLimits) -> None:
    """Parent run id and display name lengths."""
    e = checked.event
    if isinstance(e, RunStarted):
        _check_id(e.parent_run_id, "parent run id", limits, required=False)
        _check_id(e.display_name, "display name", limits, required=False)


def check_attributes(checked: Checked, limits: RunLimits) -> None:
    """Tag and property keys and values, item by item."""
    for item, (kind, key, value) in enumerate(attribute_items(checked.event)):
        if not key:
            checked.reject(item, InvalidEvent("empty_attribute_key", f"a {kind} with an empty key"))
        elif len(key) > limits.max_attribute_key_length:
            checked.reject(item, InvalidEvent(
                "attribute_key_too_long",
                f"{kind} key {_short(key)!r} has {len(key)} characters (limit {limits.max_attribute_key_length})"))
        elif value is not None and len(value) > limits.max_attribute_value_length:
            checked.reject(item, InvalidEvent(
                "attribute_value_too_long",
                f"{kind} {key!r} value has {len(value)} characters (limit {limits.max_attribute_value_length})"))


def check_status(checked: Checked, limits: RunLimits) -> None:
    """Known status; over-long error details are cut rather than losing the status."""
    e = checked.event
    if isinstance(e, RunStatusChanged):
        if e.status not in RUN_STATUSES:
            raise InvalidEvent("bad_status", f"status {_short(e.status)!r} is not one of {', '.join(RUN_STATUSES)}")
        if e.error_details is not None and len(e.error_details) > limits.max_error_details_length:
            checked.event = replace(e, error_details=e.error_details[: limits.max_error_details_length])
    elif isinstance(e, Heartbeat) and e.interval_ms <= 0:
        raise InvalidEvent("bad_heartbeat", f"interval_ms {e.interval_ms} <= 0")


def _metric_name_error(name: str, limits: RunLimits) -> InvalidEvent | None:
    if not name:
        return InvalidEvent("empty_metric_name", "a metric with an empty name")
    if len(name) > limits.max_name_length:
        return InvalidEvent("metric_name_too_long",
                            f"metric name {_short(name)!r} has {len(name)} characters (limit {limits.max_name_length})")
    return None


def check_scalars(checked: Checked, limits: RunLimits) -> None:
    """ScalarBatch: columns that line up (else the whole batch), then names and text values point by point.

    Reads the points as arrays (:mod:`consumers.columns`) and passes a
    :class:`~consumers.columns.ScalarPoints` down the chain; per-point Python
    work happens only for points that are rejected.
    """
    e = checked.event
    if not isinstance(e, ScalarBatch):
        return
    columns = scalar_columns(e)
    n = len(columns.values)
    if len(e.descriptions) != len(e.names):
        raise InvalidEvent("malformed_batch", f"{len(e.names)} names but {len(e.descriptions)} descriptions")
    if len(e.text_pos) != len(e.text_values):
        raise InvalidEvent("malformed_batch", f"{len(e.text_pos)} text positions but {len(e.text_values)} texts")
    if e.text_pos and (min(e.text_pos) < 0 or max(e.text_pos) >= n or len(set(e.text_pos)) != len(e.text_pos)):
        raise InvalidEvent("malformed_batch", "a text position is out of range or repeated")
    n_names = len(e.names)
    idx = columns.name_idx
    out_of_range = (idx < 0) | (idx >= n_names)
    if out_of_range.any():
        for point in np.flatnonzero(out_of_range).tolist():
            checked.reject(point, InvalidEvent("bad_name_index", f"name index {int(idx[point])} with {n_names} names"))
    bad_names: dict[int, InvalidEvent] = {}
    for i, name in enumerate(e.names):
        error = _metric_name_error(name, limits)
        if error is not None:
            bad_names[i] = error
    if bad_names:
        for point in np.flatnonzero(np.isin(idx, list(bad_names)) & ~out_of_range).tolist():
            checked.reject(point, bad_names[int(idx[point])])
    for pos, text in zip(e.text_pos, e.text_values):
        if len(text) > limits.max_string_value_length:
            checked.reject(pos, InvalidEvent(
                "value_too_long",
                f"a string value of {len(text)} characters (limit {limits.max_string_value_length})"))
    checked.event = points_of(e, columns)


def _column_error(column: Column, limits: RunLimits) -> InvalidEvent | None:
    if not column.name:
        return InvalidEvent("empty_column_name", "a column with an empty name")
    if len(column.name) > limits.max_name_length:
        return InvalidEvent("column_name_too_long", f"column name {_short(column.name)!r} has {len(column.name)} "
                                                    f"characters (limit {limits.max_name_length})")
    n = len(column.numbers)
    if len(column.text_pos) != len(column.texts):
        return InvalidEvent("bad_column", f"column {_short(column.name)!r}: text positions and texts differ in length")
    if column.text_pos and (min(column.text_pos) < 0 or max(column.text_pos) >= n
                            or len(set(column.text_pos)) != len(column.text_pos)):
        return InvalidEvent("bad_column", f"column {_short(column.name)!r}: a text position is out of range or repeated")
    for text in column.texts:
        if len(text) > limits.max_string_value_length:
            return InvalidEvent("value_too_long", f"column {_short(column.name)!r}: a string value of {len(text)} "
                                                  f"characters (limit {limits.max_string_value_length})")
    return None


def _columns(e: Event) -> Sequence[Column] | None:
    if isinstance(e, ListLogged):
        return [e.values]
    if isinstance(e, (RowLogged, TableLogged)):
        return e.columns
    return None


def check_columns(checked: Checked, limits: RunLimits) -> None:
    """log_list / log_row / log_table: name, column count and names, cell shapes, string lengths."""
    e = checked.event
    columns = _columns(e)
    if columns is None:
        return
    assert isinstance(e, (ListLogged, RowLogged, TableLogged))
    error = _metric_name_error(e.name, limits)
    if error is not None:
        raise error
    if len(e.description) > _MAX_DESCRIPTION:
        checked.event = e = replace(e, description=e.description[:_MAX_DESCRIPTION])
    if not columns:
        raise InvalidEvent("bad_column", f"metric {_short(e.name)!r} has no columns")
    if len(columns) > limits.max_columns_per_row:
        raise InvalidEvent("too_many_columns",
                           f"metric {_short(e.name)!r} has {len(columns)} columns (limit {limits.max_columns_per_row})")
    if len({c.name for c in columns}) != len(columns):
        raise InvalidEvent("bad_column", f"metric {_short(e.name)!r} repeats a column name")
    for column in columns:
        error = _column_error(column, limits)
        if error is not None:
            raise error
    if isinstance(e, RowLogged) and any(len(c.numbers) != 1 for c in columns):
        raise InvalidEvent("bad_column", f"row metric {_short(e.name)!r}: every column must hold exactly one value")
    if isinstance(e, TableLogged) and len({len(c.numbers) for c in columns}) != 1:
        raise InvalidEvent("bad_column", f"table metric {_short(e.name)!r}: columns differ in length")


def check_image(checked: Checked, limits: RunLimits) -> None:
    """Image name, path and size."""
    e = checked.event
    if not isinstance(e, ImageLogged):
        return
    error = _metric_name_error(e.name, limits)
    if error is not None:
        raise error
    if not e.file_path or len(e.file_path) > _MAX_PATH:
        raise InvalidEvent("bad_image", f"image {_short(e.name)!r} has an empty or over-long file path")
    if e.size < 0:
        raise InvalidEvent("bad_image", f"image {_short(e.name)!r} has a negative size")
    if e.size > limits.max_image_bytes:
        raise InvalidEvent("image_too_large",
                           f"image {_short(e.name)!r} has {e.size} bytes (limit {limits.max_image_bytes})")


def check_file_chunk(checked: Checked, limits: RunLimits) -> None:
    """A file chunk must fit its upload: index < count, data <= total, size limit, sha256 hex."""
    e = checked.event
    if not isinstance(e, FileChunk):
        return
    if not e.path or len(e.path) > _MAX_PATH or not e.upload_id or len(e.upload_id) > _MAX_PATH:
        raise InvalidEvent("bad_file_chunk", "empty or over-long path or upload id")
    if not 0 <= e.chunk_index < e.chunk_count:
        raise InvalidEvent("bad_file_chunk", f"chunk {e.chunk_index} of {e.chunk_count}")
    if e.total_size < 0 or len(e.data) > e.total_size:
        raise InvalidEvent("bad_file_chunk", f"{len(e.data)} bytes in a file of {e.total_size}")
    if e.total_size > limits.max_file_bytes:
        raise InvalidEvent("file_too_large",
                           f"file {_short(e.path)!r} has {e.total_size} bytes (limit {limits.max_file_bytes})")
    if not _SHA256.fullmatch(e.sha256):
        raise InvalidEvent("bad_file_chunk", "sha256 is not 64 lower-case hex digits")


def check_logs(checked: Checked, limits: RunLimits) -> None:
    """Captured lines: known stream, bounded length, line by line."""
    e = checked.event
    if not isinstance(e, LogBatch):
        return
    for item, line in enumerate(e.lines):
        if line.stream not in _LOG_STREAMS:
            checked.reject(item, InvalidEvent("bad_log_line", f"stream {_short(line.stream)!r}"))
        elif len(line.message) > limits.max_log_line_length or len(line.exc_text or "") > limits.max_log_line_length * 4:
            checked.reject(item, InvalidEvent(
                "log_line_too_long", f"a line of {len(line.message)} characters (limit {limits.max_log_line_length})"))


CHECKS: tuple[Check, ...] = (
    check_envelope,
    check_run_started,
    check_attributes,
    check_status,
    check_scalars,
    check_columns,
    check_image,
    check_file_chunk,
    check_logs,
)
"""The default chain, in order: the envelope first, so later links can trust ids."""


def validate(event: Event, limits: RunLimits, checks: Sequence[Check] = CHECKS) -> Checked:
    """Run the chain; raises :class:`InvalidEvent` when the whole event is rejected."""
    checked = Checked(event)
    for check in checks:
        check(checked, limits)
    return checked

