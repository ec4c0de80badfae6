"""Unit tests of the exporter: lag arithmetic, the collector, bounded polling.

Kafka and ClickHouse are in-memory fakes; the real adapters are exercised in
tests/integration/test_health_exporter.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

import consumers.exporter as exporter
from consumers.exporter import SERIES, KafkaReading, PipelineCollector, Poller, read_kafka
from schemas.settings import ExporterSettings
from store.health import TableHealth

LOCAL = {"kafka": "127.0.0.1:9092", "clickhouse": "clickhouse://127.0.0.1:9000/runstream"}

NOW = 1_700_000_000.0


class FakeOffsets:
    """An OffsetReader over dicts; ``gate`` (when set) blocks every call until it opens."""

    def __init__(
        self,
        logs: dict[str, dict[int, tuple[int, int]]],
        committed: dict[tuple[str, str], dict[int, int]] | None = None,
    ) -> None:
        self.logs = logs
        self.commits = committed or {}
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.calls = 0
        self.closed = False

    def _enter(self) -> None:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error

    def partitions(self, topic: str) -> list[int] | None:
        self._enter()
        return sorted(self.logs[topic]) if topic in self.logs else None

    def log_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        return {p: self.logs[topic][p] for p in partitions}

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        found = self.commits.get((group, topic), {})
        return {p: found.get(p, -1) for p in partitions}

    def close(self) -> None:
        self.closed = True


class FakeStats:
    """A ClickHouseStats returning a fixed reading, or raising ``error``."""

    def __init__(self, reading: TableHealth) -> None:
        self.reading = reading
        self.error: Exception | None = None
        self.closed = False

    def read(self) -> TableHealth:
        if self.error is not None:
            raise self.error
        return self.reading

    def close(self) -> None:
        self.closed = True


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` from the text exposition."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def names(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {name for name, _ in samples}


# --------------------------------------------------------------------------- read_kafka


def test_lag_is_end_minus_committed_per_partition() -> None:
    reader = FakeOffsets(
        {"ev": {0: (0, 10), 1: (0, 5)}, "ev.dlq": {0: (0, 3)}},
        {("g", "ev"): {0: 7, 1: 5}},
    )
    reading = read_kafka(reader, group="g", topic="ev", dlq_topic="ev.dlq")
    assert reading == KafkaReading(lag={("ev", 0): 3, ("ev", 1): 0}, dlq_size=3)


def test_partition_never_committed_counts_from_log_start() -> None:
    reader = FakeOffsets({"ev": {0: (4, 10), 1: (0, 2)}}, {("g", "ev"): {1: 1}})
    reading = read_kafka(reader, group="g", topic="ev", dlq_topic="ev.dlq")
    assert reading.lag == {("ev", 0): 6, ("ev", 1): 1}


def test_commit_below_log_start_counts_only_readable_messages() -> None:
    # Retention deleted offsets 0..7 unread: only 8..9 can still be consumed.
    reader = FakeOffsets({"ev": {0: (8, 10)}}, {("g", "ev"): {0: 2}})
    assert read_kafka(reader, group="g", topic="ev", dlq_topic="d").lag == {("ev", 0): 2}


def test_commit_past_end_is_no_lag() -> None:
    reader = FakeOffsets({"ev": {0: (0, 3)}}, {("g", "ev"): {0: 9}})
    assert read_kafka(reader, group="g", topic="ev", dlq_topic="d").lag == {("ev", 0): 0}


def test_missing_topics_read_as_empty() -> None:
    reading = read_kafka(FakeOffsets({}), group="g", topic="ev", dlq_topic="ev.dlq")
    assert reading == KafkaReading(lag={}, dlq_size=0)


def test_dlq_size_sums_retained_messages_of_every_partition() -> None:
    reader = FakeOffsets({"d": {0: (2, 5), 1: (0, 4), 2: (7, 7)}})
    assert read_kafka(reader, group="g", topic="ev", dlq_topic="d").dlq_size == 7


# --------------------------------------------------------------------------- collector


def test_before_any_poll_only_the_error_counters_show() -> None:
    registry = CollectorRegistry()
    PipelineCollector(registry, clock=lambda: NOW)
    samples = scrape(registry)
    assert samples == {
        ("runstream_exporter_scrape_errors_total", (("source", "kafka"),)): 0.0,
        ("runstream_exporter_scrape_errors_total", (("source", "clickhouse"),)): 0.0,
    }


def test_collector_serves_the_last_readings() -> None:
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    collector.update_kafka(KafkaReading(lag={("ev", 0): 4, ("ev", 1): 0}, dlq_size=2), seconds=0.25)
    collector.update_clickhouse(
        TableHealth(tables={"runs": (3, 1), "metric_scalars": (100, 4)}, newest_point_ms=int(NOW * 1000) - 90_000),
        seconds=0.5,
    )
    samples = scrape(registry)
    assert samples[("runstream_consumer_lag", (("partition", "0"), ("topic", "ev")))] == 4
    assert samples[("runstream_consumer_lag", (("partition", "1"), ("topic", "ev")))] == 0
    assert samples[("runstream_dlq_size", ())] == 2
    assert samples[("runstream_kafka_up", ())] == 1
    assert samples[("runstream_clickhouse_up", ())] == 1
    assert samples[("runstream_table_rows", (("table", "metric_scalars"),))] == 100
    assert samples[("runstream_table_active_parts", (("table", "metric_scalars"),))] == 4
    assert samples[("runstream_table_rows", (("table", "runs"),))] == 3
    assert samples[("runstream_newest_point_age_seconds", ())] == pytest.approx(90.0)
    assert samples[("runstream_exporter_poll_seconds", (("source", "kafka"),))] == 0.25
    assert samples[("runstream_exporter_poll_seconds", (("source", "clickhouse"),))] == 0.5


def test_newest_point_age_grows_between_polls() -> None:
    now = [NOW]
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: now[0])
    collector.update_clickhouse(TableHealth(tables={}, newest_point_ms=int(NOW * 1000)), seconds=0.1)
    assert scrape(registry)[("runstream_newest_point_age_seconds", ())] == 0
    now[0] += 42
    assert scrape(registry)[("runstream_newest_point_age_seconds", ())] == 42


def test_newest_point_from_the_future_is_age_zero_and_no_points_is_no_series() -> None:
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    collector.update_clickhouse(TableHealth(tables={}, newest_point_ms=int(NOW * 1000) + 5_000), seconds=0.1)
    assert scrape(registry)[("runstream_newest_point_age_seconds", ())] == 0
    collector.update_clickhouse(TableHealth(tables={"metric_scalars": (0, 0)}, newest_point_ms=None), seconds=0.1)
    assert "runstream_newest_point_age_seconds" not in names(scrape(registry))


def test_failed_source_reports_down_and_drops_its_stale_series() -> None:
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    collector.update_kafka(KafkaReading(lag={("ev", 0): 4}, dlq_size=1), seconds=0.1)
    collector.update_clickhouse(TableHealth(tables={"runs": (1, 1)}, newest_point_ms=None), seconds=0.1)
    collector.update_kafka(None, seconds=10.0)
    samples = scrape(registry)
    assert samples[("runstream_kafka_up", ())] == 0
    assert samples[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))] == 1
    assert {"runstream_consumer_lag", "runstream_dlq_size"}.isdisjoint(names(samples))
    # The other source is untouched.
    assert samples[("runstream_clickhouse_up", ())] == 1
    assert samples[("runstream_table_rows", (("table", "runs"),))] == 1
    collector.update_kafka(KafkaReading(lag={("ev", 0): 0}, dlq_size=1), seconds=0.1)
    samples = scrape(registry)
    assert samples[("runstream_kafka_up", ())] == 1
    assert samples[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))] == 1


def test_series_lists_every_name_the_collector_can_emit() -> None:
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    collector.update_kafka(KafkaReading(lag={("ev", 0): 1}, dlq_size=0), seconds=0.1)
    collector.update_clickhouse(TableHealth(tables={"runs": (1, 1)}, newest_point_ms=1), seconds=0.1)
    assert names(scrape(registry)) == set(SERIES)


def test_collector_describes_itself_so_clashes_fail_at_register() -> None:
    registry = CollectorRegistry()
    PipelineCollector(registry)
    with pytest.raises(DuplicateTimeseries):
        PipelineCollector(registry)


# --------------------------------------------------------------------------- poller


def make_poller(
    timeout_s: float = 5.0,
) -> tuple[CollectorRegistry, Poller, FakeOffsets, FakeStats]:
    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    offsets = FakeOffsets({"runstream.events": {0: (0, 10)}, "runstream.events.dlq": {0: (0, 2)}},
                          {("runstream-ingest", "runstream.events"): {0: 6}})
    stats = FakeStats(TableHealth(tables={"runs": (5, 2)}, newest_point_ms=int(NOW * 1000)))
    config = ExporterSettings(**LOCAL, timeout_s=timeout_s, interval_s=60)
    poller = Poller(collector, config, kafka=offsets, clickhouse=stats)
    return registry, poller, offsets, stats


def test_poll_once_feeds_both_sources() -> None:
    registry, poller, _, _ = make_poller()
    poller.poll_once()
    samples = scrape(registry)
    assert samples[("runstream_consumer_lag", (("partition", "0"), ("topic", "runstream.events")))] == 4
    assert samples[("runstream_dlq_size", ())] == 2
    assert samples[("runstream_table_rows", (("table", "runs"),))] == 5
    assert samples[("runstream_kafka_up", ())] == 1
    assert samples[("runstream_clickhouse_up", ())] == 1


def test_one_source_failing_leaves_the_other_up() -> None:
    registry, poller, offsets, stats = make_poller()
    stats.error = RuntimeError("Connection refused")
    poller.poll_once()
    samples = scrape(registry)
    assert samples[("runstream_clickhouse_up", ())] == 0
    assert samples[("runstream_exporter_scrape_errors_total", (("source", "clickhouse"),))] == 1
    assert samples[("runstream_kafka_up", ())] == 1
    stats.error = None
    offsets.error = RuntimeError("broker gone")
    poller.poll_once()
    samples = scrape(registry)
    assert samples[("runstream_clickhouse_up", ())] == 1
    assert samples[("runstream_kafka_up", ())] == 0
    assert samples[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))] == 1


def test_hung_broker_costs_one_thread_and_never_blocks_a_scrape() -> None:
    registry, poller, offsets, _ = make_poller(timeout_s=0.05)
    offsets.gate = threading.Event()
    try:
        poller.poll_once()  # returns after the timeout; the call stays blocked
        samples = scrape(registry)  # the HTTP path: must not wait for the broker
        assert samples[("runstream_kafka_up", ())] == 0
        assert samples[("runstream_clickhouse_up", ())] == 1
        poller.poll_once()  # previous call still hung: no second call starts
        assert offsets.calls == 1
        assert scrape(registry)[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))] == 2
    finally:
        offsets.gate.set()
    # Once the hung call returns, the next poll asks afresh.
    for _ in range(200):
        poller.poll_once()
        if scrape(registry)[("runstream_kafka_up", ())] == 1:
            break
    assert scrape(registry)[("runstream_kafka_up", ())] == 1
    assert offsets.calls >= 2


def test_start_polls_at_once_and_stop_closes_the_clients() -> None:
    registry, poller, offsets, stats = make_poller()
    poller.start()
    try:
        for _ in range(500):
            if ("runstream_kafka_up", ()) in scrape(registry):
                break
            threading.Event().wait(0.01)
        assert scrape(registry)[("runstream_kafka_up", ())] == 1
    finally:
        poller.stop(timeout=5)
    assert offsets.closed and stats.closed


# --------------------------------------------------------------------------- exports


def test_exports() -> None:
    assert sorted(exporter.__all__) == sorted(
        ["SERIES", "ClickHouseStats", "KafkaReading", "OffsetReader", "PipelineCollector", "Poller", "read_kafka"]
    )
    for name in exporter.__all__:
        assert getattr(exporter, name).__doc__ or name == "SERIES"


def test_every_runstream_table_has_its_series_once_clickhouse_answers() -> None:
    # Issue 12, item 7: a table ingest has not written yet (or a database not created yet) is 0 rows,
    # not "no data"; while ClickHouse does not answer, the table series stay away (clickhouse_up says why).
    from store.base import TABLES

    registry = CollectorRegistry()
    collector = PipelineCollector(registry, clock=lambda: NOW)
    collector.update_clickhouse(TableHealth(tables={"runs": (3, 1)}), seconds=0.1)
    samples = scrape(registry)
    for table in TABLES:
        assert samples[("runstream_table_rows", (("table", table),))] == (3 if table == "runs" else 0)
        assert samples[("runstream_table_active_parts", (("table", table),))] == (1 if table == "runs" else 0)
    collector.update_clickhouse(None, seconds=5.0)
    assert not [key for key in scrape(registry) if key[0] == "runstream_table_rows"]
