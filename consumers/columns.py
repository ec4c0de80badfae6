"""Scalar points as numpy columns, from decode to insert, without a Python object per point.

:func:`scalar_columns` reads a :class:`~schemas.records.ScalarBatch` of either
layout: packed (schema version 2, what the SDK writes: ``numpy.frombuffer``
over the message's own bytes; the byte planes of steps and times joined with
one strided copy each, see :mod:`schemas.packing`) or lists (version 1 writers). Bad
lengths are :class:`~consumers.errors.InvalidEvent` ``malformed_batch``, so the
message is dead-lettered; NaN and infinities in values pass untouched.

Validation swaps the event for a :class:`ScalarPoints` (the same batch, its
columns attached), so limits and row building read the arrays instead of
decoding again.

Row building (:mod:`consumers.rows`) keeps them as arrays and hands the store
numpy arrays and :class:`~store.columns.DictColumn` strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from schemas.records import ScalarBatch

from .errors import InvalidEvent

__all__ = ["ScalarColumns", "ScalarPoints", "scalar_columns", "points_of"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_MAX_MS = float(2**63 - 1024)
"""Times whose milliseconds do not fit an Int64 are refused (float64 rounding kept in mind)."""


class ScalarColumns(NamedTuple):
    """One batch's points, column by column (equal lengths)."""

    name_idx: I32
    steps: I64
    time_ms: I64
    values: F64


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalarPoints(ScalarBatch):
    """A validated :class:`ScalarBatch` as ingest holds it: the points in :attr:`columns`, list fields empty."""

    columns: ScalarColumns

    def __len__(self) -> int:
        return len(self.columns.values)

    def point_columns(self) -> tuple[list[int], list[int], list[int], list[float]]:
        """``(name_idx, steps, times_ms, values)`` as lists (tests and tools)."""
        c = self.columns
        return c.name_idx.tolist(), c.steps.tolist(), c.time_ms.tolist(), c.values.tolist()


def _packed(data: bytes, dtype: str, what: str, *, split: bool = False) -> npt.NDArray[Any]:
    """A packed column as an array: a view of ``data``, or its byte planes joined when ``split``."""
    size = np.dtype(dtype).itemsize
    if len(data) % size:
        raise InvalidEvent("malformed_batch", f"{what} holds {len(data)} bytes, not a whole number of "
                                              f"{size}-byte items")
    if not split:
        return np.frombuffer(data, dtype=dtype)
    planes = np.frombuffer(data, dtype=np.uint8).reshape(size, -1)
    items = np.empty((planes.shape[1], size), dtype=np.uint8)
    for k in range(size):  # one strided copy per plane: faster than a transposing copy
        items[:, k] = planes[k]
    return items.view(dtype).reshape(-1)


def scalar_columns(e: ScalarBatch) -> ScalarColumns:
    """The points of ``e`` as arrays; ``InvalidEvent("malformed_batch")`` when its columns do not line up."""
    if isinstance(e, ScalarPoints):
        return e.columns
    if e.packed:
        if e.name_idx or e.steps or e.times_ms or e.values:
            raise InvalidEvent("malformed_batch", "points in both the packed and the list fields")
        idx = _packed(e.packed_name_idx, "<i4", "packed_name_idx")
        steps = _packed(e.packed_steps, "<i8", "packed_steps", split=True)
        seconds = _packed(e.packed_times, "<f8", "packed_times", split=True)
        values = _packed(e.packed_values, "<f8", "packed_values")
        n = len(values)
        if not len(idx) == len(steps) == len(seconds) == n:
            raise InvalidEvent("malformed_batch", f"packed columns differ in length: name_idx {len(idx)}, "
                                                  f"steps {len(steps)}, times {len(seconds)}, values {n}")
        ms = seconds * 1000.0
        # NaN fails both comparisons: refused with the infinities.
        if n and not (np.abs(ms) < _MAX_MS).all():
            raise InvalidEvent("malformed_batch", "a point's time is not a finite epoch time")
        return ScalarColumns(idx.astype(np.int32, copy=False), steps.astype(np.int64, copy=False),
                             ms.astype(np.int64), values.astype(np.float64, copy=False))
    n = len(e.name_idx)
    if not (len(e.steps) == len(e.times_ms) == len(e.values) == n):
        raise InvalidEvent("malformed_batch", f"point arrays differ in length: name_idx {n}, steps {len(e.steps)}, "
                                              f"times_ms {len(e.times_ms)}, values {len(e.values)}")
    return ScalarColumns(np.array(e.name_idx, dtype=np.int32), np.array(e.steps, dtype=np.int64),
                         np.array(e.times_ms, dtype=np.int64), np.array(e.values, dtype=np.float64))


def points_of(e: ScalarBatch, columns: ScalarColumns) -> ScalarPoints:
    """``e`` with ``columns`` attached and its per-point fields emptied (they live in the arrays now)."""
    return ScalarPoints(writer_id=e.writer_id, seq=e.seq, run_id=e.run_id, experiment=e.experiment,
                        created_ms=e.created_ms, names=e.names, descriptions=e.descriptions, text_pos=e.text_pos,
                        text_values=e.text_values, columns=columns)
