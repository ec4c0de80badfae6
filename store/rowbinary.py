"""A small RowBinary encoder for chDB's streaming inserts.

RowBinary is row-major: each row is its cells in column order, each cell
little-endian fixed width for numbers, unsigned LEB128 length + bytes for
``String`` (which ``LowCardinality(String)`` also takes), LEB128 count + items
for ``Array(T)``. Data goes to the engine as bytes, never as SQL text.

Speed comes from encoding whole columns at once (``array.tobytes`` for numbers,
a per-batch cache for repeated strings such as run ids) and then interleaving
the per-row cells with one ``bytes.join``.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

__all__ = ["encode_rows", "leb128", "string_cells", "ENCODERS"]

if sys.byteorder != "little":  # pragma: no cover - every platform we run on is little-endian
    raise ImportError("store.rowbinary assumes a little-endian machine")

_SMALL = tuple(bytes((i,)) for i in range(128))


def leb128(n: int) -> bytes:
    """Unsigned LEB128 of ``n`` (``ValueError`` when negative)."""
    if n < 0:
        raise ValueError(f"LEB128 of a negative number {n}")
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _numbers(code: str) -> Callable[[Sequence[Any]], list[bytes]]:
    width = array(code).itemsize

    def encode(values: Sequence[Any]) -> list[bytes]:
        raw = array(code, values).tobytes()  # OverflowError / TypeError on values that do not fit
        return [raw[i : i + width] for i in range(0, len(raw), width)]

    return encode


def _string_cell(value: Any) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else bytes(memoryview(value))
    return leb128(len(data)) + data


def string_cells(values: Sequence[Any]) -> list[bytes]:
    """LEB128 length + bytes of each ``str`` (UTF-8) or bytes-like value; repeated values encoded once."""
    cache: dict[str | bytes, bytes] = {}
    out = []
    for v in values:
        if isinstance(v, (str, bytes)):
            cell = cache.get(v)
            if cell is None:
                cell = cache[v] = _string_cell(v)
        elif isinstance(v, (bytearray, memoryview)):  # unhashable: no cache
            cell = _string_cell(v)
        else:
            raise TypeError(f"a String cell takes str or bytes, not {type(v).__name__}")
        out.append(cell)
    return out


def _array_of(code: str) -> Callable[[Sequence[Any]], list[bytes]]:
    def encode(values: Sequence[Any]) -> list[bytes]:
        return [leb128(len(row)) + array(code, row).tobytes() for row in values]

    return encode


def _array_of_strings(values: Sequence[Any]) -> list[bytes]:
    out = []
    for row in values:
        out.append(leb128(len(row)) + b"".join(string_cells(row)))
    return out


def _array_of_u8(values: Sequence[Any]) -> list[bytes]:
    return [leb128(len(row)) + bytes(row) for row in values]


for _code, _width in (("q", 8), ("Q", 8), ("i", 4), ("I", 4), ("B", 1), ("d", 8)):
    if array(_code).itemsize != _width:  # pragma: no cover
        raise ImportError(f"array type {_code!r} is not {_width} bytes here")

ENCODERS: dict[str, Callable[[Sequence[Any]], list[bytes]]] = {
    "Int64": _numbers("q"),
    "UInt64": _numbers("Q"),
    "Int32": _numbers("i"),
    "UInt32": _numbers("I"),
    "UInt8": _numbers("B"),
    "Float64": _numbers("d"),
    "String": string_cells,
    "Array(String)": _array_of_strings,
    "Array(Float64)": _array_of("d"),
    "Array(UInt8)": _array_of_u8,
}
"""Logical type -> column encoder returning one RowBinary cell per row."""


def encode_rows(types: Sequence[str], columns: Sequence[Sequence[Any]]) -> bytes:
    """RowBinary of equal-length ``columns`` of the given logical ``types``.

    Raises ``KeyError`` for an unsupported type, and ``TypeError``,
    ``OverflowError`` or ``ValueError`` (``UnicodeEncodeError`` included) for a
    value its column type cannot hold.
    """
    cells = [ENCODERS[t](values) for t, values in zip(types, columns, strict=True)]
    if len(cells) == 1:
        return b"".join(cells[0])
    return b"".join(chain.from_iterable(zip(*cells, strict=True)))
