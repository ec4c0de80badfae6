"""Wiring: one ``IngestSettings`` -> source, store, limiter, dead letters, metrics -> a running :class:`Worker`.

:class:`IngestService` is what ``runstream ingest`` runs. When it reads the
local spool or writes chDB it owns the home (:class:`store.HomeLock`) and
answers other processes on the home's query socket: named read queries,
``sync`` (wait until what the spool holds now is ingested) and, for an owner
started on demand by a reader, ``release`` (step down for a ``runstream
ingest`` or ``runstream server`` that wants the home).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server

from schemas.backoff import Backoff
from schemas.errors import ConfigurationError
from schemas.kafka_client import login
from schemas.settings import IngestSettings
from store import HomeLock, QueryClient, QueryServer, Store, StoreError, StoreQueries, open_store, query_address

from .dlq import DeadLetters, FolderDeadLetters, KafkaDeadLetters
from .errors import DeadLetterError, IngestError, SourceError
from .limits import RunLimiter, StoreCounterLoader
from .metrics import IngestMetrics
from .source import KafkaSource, Source, SpoolSource, ensure_topics
from .worker import Worker

__all__ = ["IngestService", "HomeBusy", "Interrupted", "ON_DEMAND_ROLE"]

log = logging.getLogger("runstream.ingest")

T = TypeVar("T")

ON_DEMAND_ROLE = "on-demand"
"""The home-lock role of an owner a reader started; it steps down when a `runstream ingest` asks."""


class HomeBusy(IngestError):
    """Another process already owns this home's spool or chDB."""


class Interrupted(IngestError):
    """Stopped (SIGTERM) before the service had started; nothing was read."""


def _in_background(action: Callable[[], T]) -> Callable[[], T]:
    """Start ``action`` on a thread; the returned function waits for it and returns its result or raises its error."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, action()))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    thread = threading.Thread(target=run, name="runstream-ingest-open-store", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    return result


def _open_store(settings: IngestSettings) -> Store:
    try:
        url, password = settings.sink_clickhouse  # the writer: inserts and migrations
        store = open_store(url, settings.home, password=password)
    except (StoreError, ConfigurationError):
        raise
    except Exception as exc:  # the adapter should wrap its errors; never let one escape unexplained
        raise StoreError(f"cannot open the store: {exc}") from exc
    try:
        store.migrate()
    except BaseException as exc:
        store.close()
        if isinstance(exc, StoreError) or not isinstance(exc, Exception):
            raise
        raise StoreError(f"cannot apply migrations: {exc}") from exc
    return store


@dataclass(eq=False)
class _SyncRequest:
    """A reader waiting until everything the spool held at ``positions`` is ingested."""

    positions: dict[str, int]
    done: threading.Event = field(default_factory=threading.Event)


class IngestService:
    """``runstream ingest``: owns its resources from :meth:`start` to :meth:`close`.

    ``progress`` receives one-line status messages (the CLI prints them).
    ``role`` is what the home lock says about this owner: ``ingest``, or
    :data:`ON_DEMAND_ROLE` for an owner a reader started (it answers
    ``release`` and is asked to step down by the others).
    """

    def __init__(self, settings: IngestSettings, *, registry: CollectorRegistry | None = None,
                 progress: Callable[[str], None] = log.info, lock_wait_s: float = 30.0,
                 role: str = "ingest", clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.role = role
        self._progress = progress
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._lock: HomeLock | None = None
        self._store: Store | None = None
        self._server: QueryServer | None = None
        self._reads: Any = None
        self.worker: Worker | None = None
        self._metrics_server: Any = None
        self._stopping = threading.Event()
        self._syncs: list[_SyncRequest] = []
        self._syncs_lock = threading.Lock()
        self._started = time.monotonic()

    # -- starting --------------------------------------------------------------------------------

    def start(self) -> Worker:
        """Take the home (when local resources are used), open the store, migrate, join the source."""
        s = self.settings
        if s.metrics_port is not None:
            try:
                self._metrics_server = start_http_server(s.metrics_port, registry=self.registry)
            except OSError as exc:
                raise ConfigurationError(f"metrics port {s.metrics_port} is not free ({exc}); "
                                         "pick another with --metrics-port") from exc
        owns_home = s.embedded_source or s.embedded_sink
        if owns_home:
            self._take_home()
        where = s.sink_clickhouse[0] or f"chDB at {s.home / 'chdb'}"
        self._progress(f"opening {where} and applying migrations")
        # A ClickHouse server's store opens (and migrates) while Kafka is set up: a new worker takes its
        # share of the partitions sooner. chDB opens here, on the thread that will use it.
        def open_it() -> Store:
            return self._until_up(lambda: _open_store(s), where, retry=s.clickhouse is not None)

        opened: Callable[[], Store]
        if s.clickhouse is not None:
            opened = _in_background(open_it)
        else:
            store_now = open_it()
            opened = lambda: store_now  # noqa: E731
        source: Source
        dead_letters: DeadLetters
        worker_box: list[Worker] = []
        try:
            if s.kafka is not None:
                bootstrap = s.kafka
                options = s.kafka_client_options()

                def topics() -> list[str]:
                    # TLS and SASL first, with one clear error (AccessDenied: never waited for) when refused.
                    if not login(options):
                        raise SourceError(f"no Kafka broker of {bootstrap} answered")
                    return ensure_topics(options, {s.topic: s.topic_partitions, s.dlq_topic: s.topic_partitions})

                created = self._until_up(topics, f"Kafka at {bootstrap}", retry=True)
                if created:
                    self._progress(f"created topic(s) {', '.join(created)} with {s.topic_partitions} partitions")
                source = KafkaSource(options=options, topic=s.topic, group=s.group,
                                     on_revoke=lambda: worker_box[0].on_revoke(),
                                     session_timeout_ms=s.session_timeout_ms,
                                     client_id=f"runstream-ingest-{os.getpid()}")
                dead_letters = KafkaDeadLetters(options, s.dlq_topic)
                origin = f"Kafka {s.kafka} topic {s.topic} (group {s.group})"
            else:
                source = SpoolSource(s.spool_dir, s.ingest_state_dir)
                dead_letters = FolderDeadLetters(s.deadletter_dir)
                origin = f"spool {s.spool_dir}"
        except BaseException:
            self._stopping.set()  # the service will not run: the store's retries give up too
            try:
                opened().close()
            except BaseException:
                pass
            raise
        self._store = opened()
        store = self._store
        limiter = RunLimiter(s.limits, StoreCounterLoader(store), max_runs=s.max_cached_runs)
        self.worker = Worker(source=source, sink=store, limiter=limiter, dead_letters=dead_letters,
                             config=s, metrics=self.metrics, clock=self._clock)
        worker_box.append(self.worker)
        if self._stopping.is_set():  # SIGTERM arrived while starting
            self.worker.stop()
        if owns_home and s.serve_queries:
            # Readers get a read-only connection of their own: ingest never waits for them.
            self._reads = store.open_reader(time_limit_s=s.reader_time_limit_s)
            self._server = QueryServer(StoreQueries(self._reads), query_address(s.home),
                                       sync=self._sync, release=self._release, info={"role": self.role})
            self._server.start()
        metrics_note = f"; metrics on http://localhost:{s.metrics_port}/metrics" if s.metrics_port else ""
        self._progress(f"ingesting {origin} into {where}{metrics_note}")
        return self.worker

    @property
    def store(self) -> Store | None:
        """The store opened by :meth:`start` (``runstream server`` reads through it in-process), else None."""
        return self._store

    def _take_home(self) -> None:
        s = self.settings
        lock = self._lock = HomeLock(s.home)
        if self.role == ON_DEMAND_ROLE:
            # Started by a reader: when anyone else owns the home, there is nothing to do.
            if not lock.try_acquire(self.role, query_address=query_address(s.home)):
                raise HomeBusy(f"{s.home} already has an owner")
            return

        def on_wait(holder: dict[str, Any] | None) -> None:
            if holder and holder.get("role") == ON_DEMAND_ROLE and QueryClient(query_address(s.home)).release():
                self._progress(f"taking {s.home} over from the reader-started owner (pid {holder.get('pid')})")
                return
            self._progress(f"waiting for pid {holder.get('pid') if holder else '?'} "
                           f"({holder.get('role') if holder else 'unknown'}) to release {s.home}")

        ok = lock.acquire(self.role, timeout_s=self._lock_wait_s, query_address=query_address(s.home),
                          stop=self._stopping, on_wait=on_wait)
        if not ok and self._stopping.is_set():
            raise Interrupted("stopped while waiting for the home lock")
        if not ok:
            holder = lock.holder() or {}
            raise HomeBusy(f"{s.home} is owned by pid {holder.get('pid', '?')} ({holder.get('role', '?')}); "
                           "only one process may use a home's spool or chDB at a time")

    def _until_up(self, action: Callable[[], T], what: str, *, retry: bool) -> T:
        """Run ``action``; servers that are not up yet (compose start order) are waited for until :meth:`stop`."""
        backoff = Backoff(initial_s=self.settings.retry_initial_s, max_s=self.settings.retry_max_s)
        while True:
            try:
                return action()
            except (StoreError, SourceError, DeadLetterError) as exc:
                if not retry or not exc.retriable or self._stopping.is_set():
                    raise  # e.g. a wrong ClickHouse password or an untrusted certificate: waiting cannot help
                delay = backoff.next_delay()
                if backoff.failures == 1 or backoff.failures % 10 == 0:
                    self._progress(f"{what} is not available yet ({exc}); retrying (backoff up to "
                                   f"{self.settings.retry_max_s:.0f}s)")
                if self._stopping.wait(delay):
                    raise

    # -- readers' requests (on the query socket's threads) ----------------------------------------

    def idle_s(self) -> float:
        """Seconds since a reader last asked anything on the query socket (or since start); 0 while answering."""
        server = self._server
        if server is not None and server.busy:
            return 0.0
        last = server.last_request if server is not None else None
        return time.monotonic() - (last if last is not None else self._started)

    def _sync(self, timeout_s: float) -> bool:
        """Wait until everything the spool holds now is ingested and committed (False on timeout)."""
        worker = self.worker
        if worker is None or not isinstance(worker.source, SpoolSource):
            return True  # Kafka: readers wait for their own writes instead
        request = _SyncRequest(worker.source.end_positions())
        if worker.source.covers(request.positions):
            return True  # nothing new since the last commit (reads only the committed positions and files)
        with self._syncs_lock:
            self._syncs.append(request)
        try:
            return request.done.wait(timeout_s)
        finally:
            with self._syncs_lock:
                if request in self._syncs:
                    self._syncs.remove(request)

    def sync(self, timeout_s: float) -> bool:
        """In-process :meth:`_sync`: wait until what the spool holds now is ingested (``runstream server``)."""
        return self._sync(timeout_s)

    def _release(self) -> bool:
        if self.role != ON_DEMAND_ROLE:
            return False
        self._progress("a `runstream ingest` or server wants this home: stepping down")
        self.stop()
        return True

    def _answer_syncs(self, worker: Worker) -> None:
        with self._syncs_lock:
            waiting = list(self._syncs)
        if not waiting:
            return
        source = worker.source
        assert isinstance(source, SpoolSource)
        if not all(source.covers(r.positions) for r in waiting):
            if worker.buffered_rows or source.has_uncommitted():
                worker.flush()  # a reader waits: commit now rather than at the next interval
        for request in waiting:
            if source.covers(request.positions):
                request.done.set()

    # -- running -----------------------------------------------------------------------------------

    def run(self, *, report_every_s: float = 30.0, until_idle_s: float | None = None,
            should_stop: Callable[[], bool] | None = None) -> None:
        """Run the worker until :meth:`stop`; a status line every ``report_every_s``.

        ``until_idle_s``: also stop once nothing new arrived for that long (``runstream ingest --once``).
        ``should_stop``: asked every loop (an on-demand owner's idle and parent checks).
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
                if isinstance(worker.source, SpoolSource):
                    self._answer_syncs(worker)
                if should_stop is not None and should_stop():
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
        if self._reads is not None:
            self._reads.close()
            self._reads = None
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
            server, _thread = self._metrics_server
            server.shutdown()
            server.server_close()
            self._metrics_server = None
