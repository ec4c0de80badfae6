"""Wiring: one ``IngestConfig`` -> source, sink, limiter, dead letters, metrics -> a running :class:`Worker`.

:class:`IngestService` is what ``runstream ingest`` runs; :func:`drain_spool`
is what a reader runs when it owns a home and nothing else ingests (embedded
read-your-writes, see :mod:`consumers.ownership`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry

from schemas.limits import RunLimits

from .config import IngestConfig
from .dlq import DeadLetters, FolderDeadLetters, KafkaDeadLetters
from .errors import ConfigError, IngestError, SinkError, SourceError
from .limits import RunLimiter, StoreCounterLoader
from .metrics import IngestMetrics
from .ownership import HomeLock, query_address
from .query_server import QueryServer
from .source import KafkaSource, Source, SpoolSource, ensure_topics
from .worker import Worker

__all__ = ["IngestService", "LockedStore", "drain_spool", "HomeBusy", "Interrupted"]

log = logging.getLogger("runstream.ingest")


class HomeBusy(IngestError):
    """Another ``runstream ingest`` already owns this home's spool or chDB."""


class Interrupted(IngestError):
    """Stopped (SIGTERM) before the service had started; nothing was read."""


class LockedStore:
    """A store whose calls are serialised (the worker thread and the query server share one chDB session)."""

    def __init__(self, store: Any, lock: threading.Lock | None = None) -> None:
        self.store = store
        self.lock = lock or threading.Lock()

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        with self.lock:
            self.store.write(table, columns)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.store.query(sql, params))

    def close(self) -> None:
        with self.lock:
            self.store.close()


def _open_store(clickhouse: str | None, home: Path) -> Any:
    from .store import open_store  # chDB / clickhouse-driver load only when a store is opened

    try:
        store = open_store(clickhouse, home)
    except IngestError:
        raise
    except Exception as exc:  # the adapter should wrap its errors; never let one escape unexplained
        raise SinkError(f"cannot open the store: {exc}") from exc
    try:
        store.migrate()
    except BaseException as exc:
        store.close()
        if isinstance(exc, IngestError) or not isinstance(exc, Exception):
            raise
        raise SinkError(f"cannot apply migrations: {exc}") from exc
    return store


class IngestService:
    """``runstream ingest``: owns its resources from :meth:`start` to :meth:`close`.

    ``progress`` receives one-line status messages (the CLI prints them).
    """

    def __init__(self, config: IngestConfig, *, registry: CollectorRegistry | None = None,
                 progress: Callable[[str], None] = log.info, lock_wait_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self._progress = progress
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._lock: HomeLock | None = None
        self._store: LockedStore | None = None
        self._server: QueryServer | None = None
        self.worker: Worker | None = None
        self._metrics_server: Any = None
        self._stopping = threading.Event()

    def start(self) -> Worker:
        """Take the home (when local resources are used), open the store, migrate, join the source."""
        c = self.config
        if c.metrics_port is not None:
            from prometheus_client import start_http_server

            try:
                self._metrics_server = start_http_server(c.metrics_port, registry=self.registry)
            except OSError as exc:
                raise ConfigError(f"metrics port {c.metrics_port} is not free ({exc}); "
                                  "pick another with --metrics-port") from exc
        if c.embedded_source or c.embedded_sink:
            self._lock = HomeLock(c.home)
            address = query_address(c.home) if c.embedded_sink and c.serve_queries else None
            ok = self._lock.acquire(
                "ingest", timeout_s=self._lock_wait_s, query_address=address, stop=self._stopping,
                on_wait=lambda holder: self._progress(
                    f"waiting for pid {holder.get('pid') if holder else '?'} "
                    f"({holder.get('role') if holder else 'unknown'}) to release {c.home}"),
            )
            if not ok and self._stopping.is_set():
                raise Interrupted("stopped while waiting for the home lock")
            if not ok:
                holder = self._lock.holder() or {}
                raise HomeBusy(f"{c.home} is owned by pid {holder.get('pid', '?')} ({holder.get('role', '?')}); "
                               "only one `runstream ingest` may use a home's spool or chDB at a time")
        where = c.clickhouse if c.clickhouse else f"chDB at {c.home / 'chdb'}"
        self._progress(f"opening {where} and applying migrations")
        self._store = LockedStore(self._until_up(lambda: _open_store(c.clickhouse, c.home), where,
                                                 retry=c.clickhouse is not None))
        source: Source
        dead_letters: DeadLetters
        worker_box: list[Worker] = []
        if c.kafka is not None:
            bootstrap = c.kafka
            created = self._until_up(
                lambda: ensure_topics(bootstrap, {c.topic: c.topic_partitions, c.dlq_topic: c.topic_partitions}),
                f"Kafka at {bootstrap}", retry=True)
            if created:
                self._progress(f"created topic(s) {', '.join(created)} with {c.topic_partitions} partitions")
            source = KafkaSource(bootstrap=c.kafka, topic=c.topic, group=c.group,
                                 on_revoke=lambda: worker_box[0].on_revoke(),
                                 session_timeout_ms=c.session_timeout_ms,
                                 client_id=f"runstream-ingest-{os.getpid()}")
            dead_letters = KafkaDeadLetters(c.kafka, c.dlq_topic)
            origin = f"Kafka {c.kafka} topic {c.topic} (group {c.group})"
        else:
            source = SpoolSource(c.spool_dir, c.home / "ingest")
            dead_letters = FolderDeadLetters(c.deadletter_dir)
            origin = f"spool {c.spool_dir}"
        limiter = RunLimiter(c.limits, StoreCounterLoader(self._store), max_runs=c.max_cached_runs)
        self.worker = Worker(source=source, sink=self._store, limiter=limiter, dead_letters=dead_letters,
                             config=c, metrics=self.metrics, clock=self._clock)
        worker_box.append(self.worker)
        if self._stopping.is_set():  # SIGTERM arrived while starting
            self.worker.stop()
        if c.embedded_sink and c.serve_queries:
            self._server = QueryServer(self._store.store, query_address(c.home), self._store.lock)
            self._server.start()
        metrics_note = f"; metrics on http://localhost:{c.metrics_port}/metrics" if c.metrics_port else ""
        self._progress(f"ingesting {origin} into {where}{metrics_note}")
        return self.worker

    def _until_up(self, action: Callable[[], Any], what: str, *, retry: bool) -> Any:
        """Run ``action``; servers that are not up yet (compose start order) are waited for until :meth:`stop`."""
        delay = self.config.retry_initial_s
        attempt = 0
        while True:
            try:
                return action()
            except (SinkError, SourceError) as exc:
                if not retry or self._stopping.is_set():
                    raise
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    self._progress(f"{what} is not available yet ({exc}); retrying (backoff up to "
                                   f"{self.config.retry_max_s:.0f}s)")
                if self._stopping.wait(delay):
                    raise
                delay = min(delay * 2, self.config.retry_max_s)

    def run(self, *, report_every_s: float = 30.0, until_idle_s: float | None = None) -> None:
        """Run the worker until :meth:`stop`; a status line every ``report_every_s``.

        ``until_idle_s``: also stop once nothing new arrived for that long (``runstream ingest --once``).
        """
        worker = self.worker if self.worker is not None else self.start()
        next_report = time.monotonic() + report_every_s
        last_message = time.monotonic()
        try:
            while not worker.stopping:
                if worker.step() or not worker.source.ready:
                    last_message = time.monotonic()  # idle time counts only once the source can deliver
                elif until_idle_s is not None and time.monotonic() - last_message >= until_idle_s:
                    if worker.flush():
                        break
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + report_every_s
                    backlog = worker.source.backlog_bytes()
                    note = f", spool backlog {backlog} bytes" if backlog is not None else ""
                    self._progress(f"{worker.committed_messages} messages ingested so far{note}")
        finally:
            ok = worker.shutdown()
            self._progress(f"stopped after {worker.committed_messages} messages"
                           + ("" if ok else " (the last batch was not committed; it is read again on restart)"))

    def stop(self) -> None:
        """Ask the worker to flush, commit and stop (signal-handler safe)."""
        self._stopping.set()
        if self.worker is not None:
            self.worker.stop()

    def close(self) -> None:
        """Release everything, in reverse order."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.worker is not None:
            self.worker.source.close()
            self.worker.dead_letters.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            self._metrics_server = None


def drain_spool(store: Any, home: Path, *, limits: RunLimits, deadline: float,
                registry: CollectorRegistry | None = None) -> bool:
    """Ingest what the spool holds now into ``store`` (the caller holds the home lock); True when all committed."""
    config = IngestConfig(home=home, metrics_port=None, limits=limits, serve_queries=False)
    worker = Worker(
        source=SpoolSource(config.spool_dir, home / "ingest"),
        sink=store,
        limiter=RunLimiter(limits, StoreCounterLoader(store)),
        dead_letters=FolderDeadLetters(config.deadletter_dir),
        config=config,
        metrics=IngestMetrics(registry if registry is not None else CollectorRegistry()),
    )
    try:
        return worker.drain(deadline=deadline)
    finally:
        worker.source.close()
