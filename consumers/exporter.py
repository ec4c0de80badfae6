"""``runstream exporter``: pipeline health seen from outside the workers.

A worker's own series vanish when the worker dies, which is exactly when an
operator most needs to know how far behind ingestion is. This process runs
apart from the workers and reports, from Kafka's admin API and ClickHouse's
system tables::

    runstream_consumer_lag{topic,partition}    messages behind, for the ingest group
    runstream_dlq_size                         messages held by the dead-letter topic
    runstream_kafka_up / runstream_clickhouse_up     1 when the last poll worked
    runstream_table_rows{table} / runstream_table_active_parts{table}
    runstream_newest_point_age_seconds         now - max(time_ms) of metric_scalars
    runstream_exporter_scrape_errors_total{source}   failed or timed-out polls
    runstream_exporter_poll_seconds{source}    duration of the last poll

Shape: a :class:`Poller` thread asks an :class:`OffsetReader` (Kafka) and a
:class:`ClickHouseStats` (ClickHouse) for fresh readings every ``interval_s``,
each call bounded by ``timeout_s`` on a thread of its own, and hands them to a
:class:`PipelineCollector`. The collector only copies its last readings under a
lock when Prometheus scrapes, so a hung broker or server never blocks the HTTP
endpoint; a source that fails reports ``*_up 0`` and drops its other series
(stale numbers would read as "all is well").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from schemas.settings import ExporterSettings
from store.base import TABLES
from store.health import TableHealth

__all__ = [
    "SERIES",
    "ClickHouseStats",
    "KafkaReading",
    "OffsetReader",
    "PipelineCollector",
    "Poller",
    "read_kafka",
]

_log = logging.getLogger("runstream.exporter")

SERIES: tuple[str, ...] = (
    "runstream_consumer_lag",
    "runstream_dlq_size",
    "runstream_kafka_up",
    "runstream_clickhouse_up",
    "runstream_table_rows",
    "runstream_table_active_parts",
    "runstream_newest_point_age_seconds",
    "runstream_exporter_scrape_errors_total",
    "runstream_exporter_poll_seconds",
)
"""Every series name the exporter exposes (as scraped: counters end in ``_total``)."""

SOURCES = ("kafka", "clickhouse")



# --------------------------------------------------------------------------- seams


class OffsetReader(Protocol):
    """What the exporter asks Kafka (kafka-python's admin API in production)."""

    def partitions(self, topic: str) -> list[int] | None:
        """Partition ids of ``topic``; None when the topic does not exist."""

    def log_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """``partition -> (log start offset, end offset)``."""

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """``partition -> committed offset`` of ``group``; -1 or absent when none."""

    def close(self) -> None:
        """Release connections."""


class ClickHouseStats(Protocol):
    """What the exporter asks ClickHouse (clickhouse-driver in production)."""

    def read(self) -> TableHealth:
        """Read table sizes and the newest point's time."""

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class KafkaReading:
    """One poll of Kafka."""

    lag: Mapping[tuple[str, int], int]
    """``(topic, partition) -> messages`` the group has not committed yet."""
    dlq_size: int
    """Messages held by the dead-letter topic (0 when it does not exist)."""


def read_kafka(reader: OffsetReader, *, group: str, topic: str, dlq_topic: str) -> KafkaReading:
    """Compute the group's lag on ``topic`` and the size of ``dlq_topic``.

    A partition the group never committed counts from its log start: the
    worker reads from the earliest offset when it has none. A committed offset
    below the log start (retention deleted unread messages) counts from the
    log start too, since those messages cannot be read any more.
    """
    lag: dict[tuple[str, int], int] = {}
    partitions = reader.partitions(topic)
    if partitions:
        logs = reader.log_offsets(topic, partitions)
        committed = reader.committed(group, topic, partitions)
        for partition in sorted(partitions):
            start, end = logs[partition]
            position = max(committed.get(partition, -1), start)
            lag[(topic, partition)] = max(0, end - position)
    dlq_size = 0
    dlq_partitions = reader.partitions(dlq_topic)
    if dlq_partitions:
        dlq_logs = reader.log_offsets(dlq_topic, dlq_partitions)
        dlq_size = sum(max(0, end - start) for start, end in dlq_logs.values())
    return KafkaReading(lag=lag, dlq_size=dlq_size)


# --------------------------------------------------------------------------- collector


T = TypeVar("T")


@dataclass
class _SourceState(Generic[T]):
    """What the collector knows about one source; replaced whole under the lock."""

    reading: T | None = None
    up: bool | None = None  # None: not polled yet
    errors: int = 0
    poll_seconds: float | None = None


class PipelineCollector:
    """A Prometheus collector serving the last readings; never does I/O itself.

    Registers itself on ``registry``. ``clock`` (epoch seconds) dates the
    newest point's age at scrape time, so the age keeps growing between polls.
    """

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kafka: _SourceState[KafkaReading] = _SourceState()
        self._clickhouse: _SourceState[TableHealth] = _SourceState()
        registry.register(self)

    def update_kafka(self, reading: KafkaReading | None, *, seconds: float) -> None:
        """Record a Kafka poll: a reading, or None when it failed or timed out."""
        with self._lock:
            self._kafka = _next_state(self._kafka, reading, seconds)

    def update_clickhouse(self, reading: TableHealth | None, *, seconds: float) -> None:
        """Record a ClickHouse poll: a reading, or None when it failed or timed out."""
        with self._lock:
            self._clickhouse = _next_state(self._clickhouse, reading, seconds)

    def describe(self) -> list[Metric]:
        """The families, without samples: lets the registry check names at register time."""
        return list(_families())

    def collect(self) -> Iterator[Metric]:
        """Build the families from a copy of the last readings."""
        with self._lock:
            kafka, clickhouse = self._kafka, self._clickhouse
        now = self._clock()
        fam = {f.name: f for f in _families()}
        for source, state in (("kafka", kafka), ("clickhouse", clickhouse)):
            fam["runstream_exporter_scrape_errors"].add_metric([source], state.errors)
            if state.poll_seconds is not None:
                fam["runstream_exporter_poll_seconds"].add_metric([source], state.poll_seconds)
            if state.up is not None:
                fam[f"runstream_{source}_up"].add_metric([], 1.0 if state.up else 0.0)
        if kafka.up and kafka.reading is not None:
            for (topic, partition), lag in sorted(kafka.reading.lag.items()):
                fam["runstream_consumer_lag"].add_metric([topic, str(partition)], lag)
            fam["runstream_dlq_size"].add_metric([], kafka.reading.dlq_size)
        if clickhouse.up and clickhouse.reading is not None:
            # Every runstream table has its series as soon as ClickHouse answers, at 0 until ingest
            # creates and fills it: "no data" would hide a healthy, empty pipeline from rate() and alerts.
            tables = {**{table: (0, 0) for table in TABLES}, **clickhouse.reading.tables}
            for table, (rows, parts) in sorted(tables.items()):
                fam["runstream_table_rows"].add_metric([table], rows)
                fam["runstream_table_active_parts"].add_metric([table], parts)
            newest_ms = clickhouse.reading.newest_point_ms
            if newest_ms is not None:
                # A training host whose clock runs ahead would give a negative age.
                age = max(0.0, now - newest_ms / 1000.0)
                fam["runstream_newest_point_age_seconds"].add_metric([], age)
        yield from fam.values()


def _next_state(state: _SourceState[T], reading: T | None, seconds: float) -> _SourceState[T]:
    if reading is None:
        return _SourceState(reading=None, up=False, errors=state.errors + 1, poll_seconds=seconds)
    return _SourceState(reading=reading, up=True, errors=state.errors, poll_seconds=seconds)


def _families() -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    yield GaugeMetricFamily(
        "runstream_consumer_lag",
        "Messages of the topic the ingest group has not committed yet.",
        labels=["topic", "partition"],
    )
    yield GaugeMetricFamily("runstream_dlq_size", "Messages held by the dead-letter topic.")
    yield GaugeMetricFamily("runstream_kafka_up", "1 when the exporter's last Kafka poll worked, else 0.")
    yield GaugeMetricFamily(
        "runstream_clickhouse_up", "1 when the exporter's last ClickHouse poll worked, else 0."
    )
    yield GaugeMetricFamily(
        "runstream_table_rows", "Rows in active parts of a runstream table (before merges collapse duplicates).",
        labels=["table"],
    )
    yield GaugeMetricFamily(
        "runstream_table_active_parts", "Active data parts of a runstream table.", labels=["table"]
    )
    yield GaugeMetricFamily(
        "runstream_newest_point_age_seconds",
        "Seconds since the newest scalar point's time (max time_ms of metric_scalars).",
    )
    yield CounterMetricFamily(
        "runstream_exporter_scrape_errors",
        "Exporter polls of a source that failed or timed out.",
        labels=["source"],
    )
    yield GaugeMetricFamily(
        "runstream_exporter_poll_seconds", "Duration of the exporter's last poll of a source.", labels=["source"]
    )


# --------------------------------------------------------------------------- poller


class _BoundedCall(Generic[T]):
    """Runs one call at a time on a daemon thread; callers wait a bounded time.

    A call that outlives its wait is left to finish (a thread cannot be killed);
    until it does, no new call starts, so a hung broker costs one thread, not one
    per interval. Its late result is dropped: the next poll asks afresh.
    """

    def __init__(self, name: str, fn: Callable[[], T]) -> None:
        self._name = name
        self._fn = fn
        self._thread: threading.Thread | None = None
        self._box: list[T | BaseException] = []
        self.busy = False

    def start(self) -> None:
        """Start a call, unless the previous one still runs (then ``busy`` is set)."""
        self.busy = self._thread is not None and self._thread.is_alive()
        if self.busy:
            return
        box: list[T | BaseException] = []

        def target() -> None:
            try:
                box.append(self._fn())
            except Exception as exc:  # reported by wait(); the thread must not die loudly
                box.append(exc)

        self._box = box
        self._thread = threading.Thread(target=target, name=f"runstream-exporter-{self._name}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> T:
        """The call's result; raises its error, or ``TimeoutError`` past ``timeout``."""
        if self.busy:
            raise TimeoutError(f"{self._name}: the previous poll has not returned yet")
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._name}: no answer within {timeout:g} s")
        result = self._box[0]
        if isinstance(result, BaseException):
            raise result
        return result


class Poller:
    """Polls Kafka and ClickHouse side by side and feeds the collector."""

    def __init__(
        self,
        collector: PipelineCollector,
        config: ExporterSettings,
        *,
        kafka: OffsetReader,
        clickhouse: ClickHouseStats,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collector = collector
        self._config = config
        self._kafka = kafka
        self._clickhouse = clickhouse
        self._monotonic = monotonic
        self._kafka_call: _BoundedCall[KafkaReading] = _BoundedCall(
            "kafka",
            lambda: read_kafka(kafka, group=config.group, topic=config.topic, dlq_topic=config.dlq_topic),
        )
        self._clickhouse_call: _BoundedCall[TableHealth] = _BoundedCall("clickhouse", clickhouse.read)
        self._up: dict[str, bool | None] = {source: None for source in SOURCES}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        """Poll both sources in parallel; returns within about ``timeout_s``."""
        started = self._monotonic()
        self._kafka_call.start()
        self._clickhouse_call.start()
        deadline = started + self._config.timeout_s
        kafka = self._finish("kafka", self._kafka_call, deadline)
        self._collector.update_kafka(kafka, seconds=self._monotonic() - started)
        clickhouse = self._finish("clickhouse", self._clickhouse_call, deadline)
        self._collector.update_clickhouse(clickhouse, seconds=self._monotonic() - started)

    def _finish(self, source: str, call: _BoundedCall[T], deadline: float) -> T | None:
        try:
            result: T | None = call.wait(max(0.0, deadline - self._monotonic()))
        except Exception as exc:
            result = None
            # Log transitions only: a source down for hours must not flood the log.
            level = logging.WARNING if self._up[source] is not False else logging.DEBUG
            _log.log(level, "%s poll failed: %s: %s", source, type(exc).__name__, exc)
        else:
            if self._up[source] is False:
                _log.info("%s poll works again", source)
        self._up[source] = result is not None
        return result

    def start(self) -> None:
        """Poll now, then every ``interval_s``, on a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="runstream-exporter-poller", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            started = self._monotonic()
            try:
                self.poll_once()
            except Exception:  # a bug must not stop the polling of a monitoring process
                _log.exception("exporter poll crashed")
            remaining = self._config.interval_s - (self._monotonic() - started)
            if self._stop.wait(max(0.0, remaining)):
                return

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling (waits for the loop, at most ``timeout``) and close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for closer in (self._kafka.close, self._clickhouse.close):
            try:
                closer()
            except Exception as exc:  # closing is best effort on the way out
                _log.debug("close failed: %s", exc)
