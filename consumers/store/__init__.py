"""Where events land: a ClickHouse server, or chDB embedded in the ingest process.

:func:`open_store` picks one: a ``clickhouse://`` URL -> :class:`ClickHouseStore`,
none -> :class:`ChdbStore` at ``<home>/chdb``. Both satisfy :class:`Store`
(``write``, ``query``, ``migrate``, ``server_version``, ``database``, ``close``);
the logical schema is :data:`TABLES`. Neither clickhouse-driver nor chDB is
imported until a store is opened.
"""

from __future__ import annotations

from pathlib import Path

from .base import TABLES, EventSink, QueryRunner, Store, StoreBusy, StoreError, check_database_name
from .chdb import ChdbStore
from .clickhouse import ClickHouseSettings, ClickHouseStore

__all__ = [
    "open_store",
    "EventSink",
    "QueryRunner",
    "Store",
    "TABLES",
    "StoreError",
    "StoreBusy",
    "ChdbStore",
    "ClickHouseStore",
    "ClickHouseSettings",
    "check_database_name",
]


def open_store(clickhouse_url: str | None, home: Path) -> Store:
    """The store for a ``clickhouse://`` URL, or chDB at ``home / "chdb"`` when the URL is None.

    Does not migrate (call ``store.migrate()``). ``ConfigError`` for a bad URL;
    ``StoreBusy`` when another process has the chDB directory open.
    """
    if clickhouse_url is not None:
        return ClickHouseStore.from_url(clickhouse_url)
    return ChdbStore(Path(home) / "chdb")
