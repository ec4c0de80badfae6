"""Where ``runstream server`` reads runs from, and who ingests for it.

- ClickHouse server (``--clickhouse``): one connection per request
  (:func:`store.server_reads`); with Kafka, ingest workers run elsewhere.
- Embedded home (the default: spool and/or chDB under ``--home``): the server
  owns the home like ``runstream ingest`` (the ownership lock, the ingest loop
  in a thread, the query socket for other readers) and reads its chDB in
  process, so logged runs show up within a flush interval. When a
  ``runstream ingest`` already owns the home, the server reads through that
  owner's query socket instead.

:meth:`ServerReads.settle` is what a read does before it answers "no such
run": let the spool be ingested (embedded), or wait ingest's usual lag (Kafka).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import ContextManager

from consumers.service import HomeBusy, IngestService
from schemas.settings import IngestSettings
from store import QueryClient, ReadQueries, StoreQueries, query_address, server_reads

__all__ = ["ServerReads"]

log = logging.getLogger("runstream.server")

KAFKA_SETTLE_S = 2.0
"""Kafka mode: how long an unknown run id waits for ingest before it is "not found" (p99 lag ~1.2 s)."""


class ServerReads:
    """Opens the store for the server's lifetime (:meth:`start`/:meth:`stop`); :meth:`connect` per request."""

    def __init__(self, settings: IngestSettings, *, lock_wait_s: float = 5.0,
                 progress: Callable[[str], None] = log.info) -> None:
        self.settings = replace(settings, metrics_port=None)
        self._lock_wait_s = lock_wait_s
        self._progress = progress
        self._service: IngestService | None = None
        self._thread: threading.Thread | None = None
        self._reads: Callable[[], ContextManager[ReadQueries]] | None = None
        self._owner_client: QueryClient | None = None
        self.owner = False
        """True when this process owns the embedded home (and ingests its spool)."""

    def start(self) -> None:
        s = self.settings
        if s.embedded_source or s.embedded_sink:
            service = IngestService(s, role="server", lock_wait_s=self._lock_wait_s, progress=self._progress)
            try:
                service.start()
            except HomeBusy:
                service.close()
                self._progress(f"{s.home} has an owner already: reading through its query socket")
            except BaseException:
                service.close()
                raise
            else:
                self._service, self.owner = service, True
                self._thread = threading.Thread(target=self._ingest, name="runstream-server-ingest", daemon=True)
                self._thread.start()
        if s.clickhouse is not None:
            # The reader user (RUNSTREAM_CLICKHOUSE): the server only reads ClickHouse; writes go through Kafka.
            self._reads = server_reads(s.clickhouse, password=s.clickhouse_password)
        elif self._service is not None and self._service.store is not None:
            reads = StoreQueries(self._service.store)
            self._reads = lambda: contextlib.nullcontext(reads)
        else:
            client = self._owner_client = QueryClient(query_address(s.home))
            self._reads = lambda: contextlib.nullcontext(client)

    def _ingest(self) -> None:
        assert self._service is not None
        try:
            self._service.run()
        except Exception:  # the server keeps answering from what was ingested; say why ingest stopped
            log.exception("runstream server: ingest stopped")

    @contextlib.contextmanager
    def connect(self) -> Iterator[ReadQueries]:
        """The read queries for one request."""
        if self._reads is None:
            raise RuntimeError("ServerReads.connect() before start()")
        with self._reads() as reads:
            yield reads

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until what the home's spool holds now is visible (embedded), or ingest's usual lag (Kafka)."""
        if not self.settings.embedded_source:
            time.sleep(KAFKA_SETTLE_S)
        elif self._service is not None:
            self._service.sync(timeout_s)
        elif self._owner_client is not None:
            self._owner_client.sync(timeout_s)

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
            if self._thread is not None:
                self._thread.join(timeout=30)
            self._service.close()
            self._service = None
