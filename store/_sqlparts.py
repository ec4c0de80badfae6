"""What the UI's read modules share: the read-query seam, fixed query fragments, value helpers.

Every UI query is fixed text with a name (see :mod:`store.ui_queries`): user
values are ``{name:Type}`` parameters, never SQL, and a home's owner can
answer the names over its query socket. A list of values (runs, metric names)
is one ``Array(String)`` parameter, tested with ``IN (SELECT arrayJoin(...))``
(:func:`in_array`): a set, as fast as ``IN`` over literals and able to narrow
the read by the sorting key, where ``has()`` is a linear search per row (on
ClickHouse 18.16 five times slower for a hundred runs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Reads", "in_array", "in_array_params", "finite_or_none", "text_of"]


class Reads(Protocol):
    """Runs a named read query: :class:`store.queries.ReadQueries`' shape, restated here because
    ``store.queries`` includes this package's queries (importing it back would be a cycle)."""

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of query ``name`` with ``params``; ``KeyError`` for an unknown name."""
        ...


def in_array(column: str, param: str) -> str:
    """``column`` is one of the values of the ``Array(String)`` parameter ``param``.

    Fixed text (``column`` and ``param`` come from our code); fill it with :func:`in_array_params`.
    """
    return f"{column} IN (SELECT arrayJoin({{{param}:Array(String)}}))"


def in_array_params(param: str, values: Sequence[str]) -> dict[str, Any]:
    """The parameters of :func:`in_array` for ``values`` (not empty)."""
    if not values:
        raise ValueError(f"{param}: the list needs at least one value")
    return {param: list(values)}


def finite_or_none(values: Iterable[Any]) -> list[float | None]:
    """Floats as JSON can carry them: NaN and ±inf become None (a gap in a chart, an empty cell)."""
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        f = float(v)
        out.append(f if math.isfinite(f) else None)
    return out


def text_of(value: Any) -> str:
    """A String cell as text: chDB hands back ``bytes`` for invalid UTF-8, shown with U+FFFD."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
