"""runstream's storage layer: where events land and how every reader reads them.

- Engines: a ClickHouse server (:class:`ClickHouseStore`, clickhouse-driver) or
  chDB embedded in the owning process (:class:`ChdbStore`); :func:`open_store`
  picks one. Both satisfy :class:`Store` (``write``, ``query``, ``migrate``,
  ``server_version``, ``database``, ``close``); the logical schema is
  :data:`TABLES`, the DDL is rendered by :mod:`store.migrations`.
- Reads: :class:`RunReader` answers in Azure ML's shapes through named read
  queries (:mod:`store.queries`); :func:`server_reads` opens them on a
  ClickHouse server, :class:`StoreQueries` on a store this process holds, and
  :class:`QueryClient` asks a home's owner over its query socket.
- The embedded home: :class:`HomeLock` (who owns it) and :class:`QueryServer`
  (how its owner answers other processes).

Neither clickhouse-driver nor chDB is imported until a store is opened, so a
process that only reads through a home's owner never loads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ContextManager

from schemas.secrets import Secret

from .base import TABLES, EventSink, QueryRunner, Store, check_database_name
from .chdb import ChdbStore
from .clickhouse import ClickHouseSettings, ClickHouseStore
from .errors import NotVisible, OwnerUnavailable, RunNotFound, StoreBusy, StoreError
from .home import HomeLock, query_address
from .queries import READ_QUERIES, ReadQueries, StoreQueries
from .query_socket import QueryClient, QueryServer
from .reader import IMAGE_REF_PREFIX, RunReader, RunRecord

__all__ = [
    "open_store",
    "server_reads",
    "EventSink",
    "QueryRunner",
    "Store",
    "TABLES",
    "ChdbStore",
    "ClickHouseStore",
    "ClickHouseSettings",
    "check_database_name",
    "StoreError",
    "StoreBusy",
    "OwnerUnavailable",
    "RunNotFound",
    "NotVisible",
    "HomeLock",
    "query_address",
    "READ_QUERIES",
    "ReadQueries",
    "StoreQueries",
    "QueryClient",
    "QueryServer",
    "RunReader",
    "RunRecord",
    "IMAGE_REF_PREFIX",
]


def open_store(clickhouse_url: str | None, home: Path, *, password: Secret | None = None) -> Store:
    """The store for a ``clickhouse://`` URL (its user's ``password`` apart), or chDB at ``home / "chdb"``.

    Does not migrate (call ``store.migrate()``; only writers do). ``ConfigurationError``
    for a bad URL; ``StoreBusy`` when another process has the chDB directory open.
    """
    if clickhouse_url is not None:
        return ClickHouseStore.from_url(clickhouse_url, password=password)
    return ChdbStore(Path(home) / "chdb")


def server_reads(clickhouse_url: str, *, password: Secret | None = None) -> Callable[[], ContextManager[ReadQueries]]:
    """Read queries on a ClickHouse server, one connection per read (nothing is left open between reads)."""

    @contextlib.contextmanager
    def connect() -> Iterator[ReadQueries]:
        server = ClickHouseStore.from_url(clickhouse_url, password=password)
        try:
            yield StoreQueries(server)
        finally:
            server.close()

    return connect
