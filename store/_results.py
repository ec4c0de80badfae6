"""Parse chDB's ``JSONCompactEachRowWithNamesAndTypes`` output into Python rows, typed by the header.

Why this format and not ``JSONCompact``: in chDB 26.9 ``JSONCompact`` always
replaces invalid UTF-8 with U+FFFD, while the ``EachRow`` variant honours
``output_format_json_validate_utf8=0``, so file bytes survive. NaN/inf arrive
as ``"nan"``/``"inf"`` (``output_format_json_quote_denormals=1``) and 64-bit
integers as plain JSON numbers, which Python reads exactly. Values become what
clickhouse-driver returns for the same query: ``float`` for floats, ``int`` for
integers, ``list`` for arrays, ``tuple`` for tuples, ``str`` for strings (or
``bytes`` when they are not valid UTF-8).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["parse_rows", "split_type_args"]

_Conv = Callable[[Any], Any]


def split_type_args(inner: str) -> list[str]:
    """``"UInt8, Array(String)"`` -> ``["UInt8", "Array(String)"]`` (commas at depth 0 only)."""
    parts, depth, start = [], 0, 0
    quoted = False
    for i, ch in enumerate(inner):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return [p for p in parts if p]


def _unwrap(typ: str, wrapper: str) -> str | None:
    prefix = wrapper + "("
    if typ.startswith(prefix) and typ.endswith(")"):
        return typ[len(prefix) : -1].strip()
    return None


_NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s+(\S.*)")


def _float(v: Any) -> Any:
    return float(v) if v is not None else None


def _int(v: Any) -> Any:
    return int(v) if v is not None else None


def _bytes_if_invalid(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:  # surrogate escapes: the engine sent bytes that are not UTF-8
            return v.encode("utf-8", "surrogateescape")
    return v


@lru_cache(maxsize=256)
def _converter(typ: str, raw_strings: bool) -> _Conv | None:
    """A function turning one JSON value of ``typ`` into its Python value (None: keep as parsed)."""
    typ = typ.strip()
    for wrapper in ("LowCardinality", "Nullable"):
        inner = _unwrap(typ, wrapper)
        if inner is not None:
            return _converter(inner, raw_strings)
    if typ in ("Float32", "Float64") or typ.startswith("BFloat16"):
        return _float
    if re.fullmatch(r"U?Int(8|16|32|64|128|256)", typ):
        return _int
    if typ == "String" or typ.startswith("FixedString("):
        return _bytes_if_invalid if raw_strings else None
    inner = _unwrap(typ, "Array")
    if inner is not None:
        item = _converter(inner, raw_strings)
        if item is None:
            return None
        return lambda v: None if v is None else [item(x) for x in v]
    inner = _unwrap(typ, "Tuple")
    if inner is not None:
        convs = []
        for arg in split_type_args(inner):
            named = _NAMED.fullmatch(arg)
            if named is not None and "(" not in named.group(1):
                arg = named.group(2)
            convs.append(_converter(arg, raw_strings) or (lambda x: x))
        return lambda v: None if v is None else tuple(c(x) for c, x in zip(convs, v))
    return None


def _parse_int(text: str) -> int | float:
    # ClickHouse prints the Float64 -0.0 as "-0"; no integer column prints that.
    return -0.0 if text == "-0" else int(text)


def parse_rows(data: bytes) -> list[tuple[Any, ...]]:
    """Rows of one ``JSONCompactEachRowWithNamesAndTypes`` result (``[]`` for no output)."""
    if not data:
        return []
    try:
        text = data.decode("utf-8")
        raw_strings = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        raw_strings = True
    lines = text.rstrip("\n").split("\n")
    if len(lines) < 2:
        raise ValueError(f"a result without a names and a types line: {text[:200]!r}")
    types = json.loads(lines[1])
    if len(lines) == 2:
        return []
    # JSON escapes newlines inside strings, so each remaining line is one row.
    rows = json.loads("[" + ",".join(lines[2:]) + "]", parse_int=_parse_int)
    convs = [_converter(t, raw_strings) for t in types]
    if all(c is None for c in convs):
        return [tuple(r) for r in rows]
    pairs = list(enumerate(convs))
    return [tuple(r[i] if c is None else c(r[i]) for i, c in pairs) for r in rows]
