"""Small pieces of query text shared by the UI's read queries.

The text built here depends only on *how many* values there are, never on the
values themselves: each value becomes its own ``{name:Type}`` placeholder, so
user data stays data on both backends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from consumers.store.base import QueryRunner as Runner  # becomes store.base with the layering

__all__ = ["in_list", "finite_or_none", "text_of", "Runner"]


def in_list(prefix: str, values: Sequence[str], typ: str = "String") -> tuple[str, dict[str, Any]]:
    """``("({prefix0:String}, {prefix1:String})", {prefix0: v0, ...})`` for an ``x IN (...)`` test.

    ``IN`` over a tuple of constants lets both engines prune by the sorting key
    (``has(array, x)`` does not on 18.16). ``values`` must not be empty.
    """
    if not values:
        raise ValueError(f"{prefix}: an IN list needs at least one value")
    names = [f"{prefix}{i}" for i in range(len(values))]
    return "(" + ", ".join(f"{{{n}:{typ}}}" for n in names) + ")", dict(zip(names, values))


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
