"""A small encoder for ClickHouse's ``Native`` input format (one block), for chDB's streaming inserts.

A block is: column count and row count (LEB128), then per column its name and
type (LEB128-prefixed strings) and its values *column-major*: numbers as one
little-endian array, ``String`` as LEB128 length + bytes per value,
``Array(T)`` as cumulative UInt64 end offsets followed by all items flattened.
Columns are declared with their logical type (``String``); the engine converts
to the physical one (``LowCardinality(String)``) on the way in.

Why Native rather than RowBinary (:mod:`store.rowbinary`, kept as an
alternative): the data is already columnar, so numbers are one
``array.tobytes`` each and nothing is interleaved per row. Measured on
50,000-row ``metric_scalars`` batches: about 3x the insert rate of RowBinary.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate, chain
from typing import Any

from .rowbinary import leb128, string_cells

__all__ = ["encode_block", "COLUMN_ENCODERS"]


def _numbers(code: str) -> Callable[[Sequence[Any]], bytes]:
    def encode(values: Sequence[Any]) -> bytes:
        return array(code, values).tobytes()  # OverflowError / TypeError on values that do not fit

    return encode


def _strings_column(values: Sequence[Any]) -> bytes:
    return b"".join(string_cells(values))


def _offsets(rows: Sequence[Sequence[Any]]) -> bytes:
    return array("Q", accumulate(len(r) for r in rows)).tobytes()


def _array_of(item: Callable[[Sequence[Any]], bytes]) -> Callable[[Sequence[Any]], bytes]:
    def encode(rows: Sequence[Any]) -> bytes:
        return _offsets(rows) + item(list(chain.from_iterable(rows)))

    return encode


def _u8(values: Sequence[Any]) -> bytes:
    return bytes(values)  # ValueError outside 0..255


COLUMN_ENCODERS: dict[str, Callable[[Sequence[Any]], bytes]] = {
    "Int64": _numbers("q"),
    "UInt64": _numbers("Q"),
    "Int32": _numbers("i"),
    "UInt32": _numbers("I"),
    "UInt8": _numbers("B"),
    "Float64": _numbers("d"),
    "String": _strings_column,
    "Array(String)": _array_of(_strings_column),
    "Array(Float64)": _array_of(_numbers("d")),
    "Array(UInt8)": _array_of(_u8),
}
"""Logical type -> encoder of one whole column."""


def _name(text: str) -> bytes:
    data = text.encode("utf-8")
    return leb128(len(data)) + data


def encode_block(names: Sequence[str], types: Sequence[str], columns: Sequence[Sequence[Any]]) -> bytes:
    """One Native block of equal-length ``columns`` with the given names and logical ``types``.

    Raises ``ValueError`` for columns of different lengths, ``KeyError`` for an
    unsupported type, and ``TypeError``, ``OverflowError`` or ``ValueError``
    (``UnicodeEncodeError`` included) for a value its column type cannot hold.
    """
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")
    rows = lengths.pop() if lengths else 0
    out = [leb128(len(columns)), leb128(rows)]
    for name, typ, values in zip(names, types, columns, strict=True):
        out.append(_name(name))
        out.append(_name(typ))
        out.append(COLUMN_ENCODERS[typ](values))
    return b"".join(out)
