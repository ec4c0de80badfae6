"""How a store is doing, as the exporter reports it: rows and active parts per table, the newest point.

Read from ``system.tables`` and ``system.parts``, which every ClickHouse
version (18.16 included) and chDB have. A database that does not exist yet
reads as "no tables", not as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .base import QueryRunner

__all__ = ["TableHealth", "read_table_health"]

_TABLES = "SELECT name FROM system.tables WHERE database = {database:String}"
_PARTS = (
    "SELECT table, sum(rows), count() FROM system.parts WHERE database = {database:String} AND active "
    "GROUP BY table"
)
_NEWEST_POINT = "SELECT count(), max(time_ms) FROM {db}.metric_scalars"


@dataclass(frozen=True)
class TableHealth:
    """One reading of a store's tables."""

    tables: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Table -> (rows, active parts), for every table of the runstream database."""
    newest_point_ms: int | None = None
    """``max(time_ms)`` of ``metric_scalars``; None when it is empty or missing."""


def read_table_health(runner: QueryRunner, database: str) -> TableHealth:
    """Rows and active parts of every table of ``database``, and its newest scalar point."""
    params = {"database": database}
    tables: dict[str, tuple[int, int]] = {str(name): (0, 0) for (name,) in runner.query(_TABLES, params)}
    for table, rows, active in runner.query(_PARTS, params):
        tables[str(table)] = (int(rows), int(active))
    newest: int | None = None
    if "metric_scalars" in tables:
        [(count, max_ms)] = runner.query(_NEWEST_POINT)
        # An empty table answers max() = 0 on old servers: count() tells them apart.
        newest = int(max_ms) if count else None
    return TableHealth(tables=tables, newest_point_ms=newest)
