"""Our query dialect: ``{db}`` for the database and ``{name:Type}`` for each value.

The same query text runs on both backends:

- chDB understands ``{name:Type}`` natively; :func:`for_chdb` turns each value
  into the text form the engine parses for that type (strings escaped, arrays
  as quoted literals), so no value ever becomes SQL text.
- ClickHouse 18.16 has no server-side parameters: :func:`for_driver` rewrites
  each placeholder to clickhouse-driver's ``%(name)s`` (wrapped in a ``CAST`` to
  the declared type, so ``[]`` is an ``Array(String)``) and the driver escapes
  the value; literal ``%`` in the query is doubled for the driver's formatting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .base import check_database_name

__all__ = ["PLACEHOLDER", "placeholders", "bind_db", "for_driver", "driver_params", "for_chdb", "chdb_value"]

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")
"""``{name:Type}``; the type may hold parentheses (``Array(String)``) but no braces."""

_STRINGISH = re.compile(r"(?:LowCardinality\()?(?:Nullable\()?(?:String|FixedString\(\d+\))\)?\)?")


def placeholders(sql: str) -> dict[str, str]:
    """``name -> type`` of every placeholder; ``ValueError`` if one name is declared with two types."""
    out: dict[str, str] = {}
    for m in PLACEHOLDER.finditer(sql):
        name, typ = m.group(1), m.group(2).strip()
        if out.setdefault(name, typ) != typ:
            raise ValueError(f"placeholder {name!r} is declared as both {out[name]} and {typ}")
    return out


def bind_db(sql: str, database: str) -> str:
    """Replace ``{db}`` with the back-quoted, validated database name."""
    return sql.replace("{db}", f"`{check_database_name(database)}`")


def _check_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, str]:
    declared = placeholders(sql)
    missing = [n for n in declared if params is None or n not in params]
    if missing:
        raise ValueError(f"query parameters missing: {missing}")
    return declared


@lru_cache(maxsize=512)
def _driver_sql(sql: str, database: str) -> str:
    text = bind_db(sql, database).replace("%", "%%")

    def sub(m: re.Match[str]) -> str:
        name, typ = m.group(1), m.group(2).strip()
        if _STRINGISH.fullmatch(typ):
            return f"%({name})s"
        return f"CAST(%({name})s AS {typ})"

    return PLACEHOLDER.sub(sub, text)


def for_driver(sql: str, database: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The query and parameters for ``clickhouse_driver.Client.execute`` (driver-side escaping)."""
    _check_params(sql, params)
    return _driver_sql(sql, database), driver_params(params or {})


def _driver_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)  # the driver would write True, which 18.16 does not parse
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, list):
        return [_driver_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_driver_value(v) for v in value)
    raise TypeError(f"unsupported query parameter type {type(value).__name__}")


def driver_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters the driver escapes correctly: ``bool`` -> ``int``; other types than
    ``None``/``int``/``float``/``str``/``list``/``tuple`` raise ``TypeError``."""
    return {name: _driver_value(value) for name, value in params.items()}


def _escape(text: str, quote: bool) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif quote and ch == "'":
            out.append("\\'")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")  # tab, newline, NUL...: never raw in the parameter text
        else:
            out.append(ch)
    return "".join(out)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return "'" + _escape(value, quote=True) + "'"
    if isinstance(value, list):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ",".join(_literal(v) for v in value) + ")"
    raise TypeError(f"unsupported query parameter type {type(value).__name__}")


def chdb_value(value: Any) -> str:
    """The text chDB parses for one ``{name:Type}`` value.

    A top-level string is in ClickHouse's *escaped* text form (backslash escapes,
    no quotes); everything else is a literal (arrays hold quoted strings).
    """
    if isinstance(value, str):
        return _escape(value, quote=False)
    if value is None:
        return "\\N"
    return _literal(value)


def for_chdb(sql: str, database: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
    """The query (``{db}`` bound) and the parameters as chDB expects them (text per name)."""
    declared = _check_params(sql, params)
    values = {name: chdb_value(params[name]) for name in declared} if params else {}
    return bind_db(sql, database), values
