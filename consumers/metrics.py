"""Every Prometheus series an ingest worker exports, in one place.

Series names are part of runstream's interface: keep them stable and
documented in the README ("Operating runstream"). Label values come from
bounded sets only (event types, table names, reasons), never run ids or
metric names. Every known label value is created at 0 when the worker starts
(Prometheus' instrumentation guidance): ``rate()`` over a reason that never
happened is 0, not "no data". The registry is injected: tests build a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.errors import DecodeError
from schemas.records import EVENT_TYPES

from .rows import WRITE_ORDER
from .source import SPOOL_ERROR_REASONS
from .validate import REASONS

__all__ = ["IngestMetrics", "REJECTION_REASONS"]

REJECTION_REASONS: frozenset[str] = REASONS | DecodeError.REASONS | SPOOL_ERROR_REASONS
"""Every reason a message or item can be rejected or dead-lettered for: the ``reason`` label's values."""

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_INSERT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ROWS_BUCKETS = (1, 10, 100, 1_000, 10_000, 50_000, 100_000, 500_000)


class IngestMetrics:
    """The worker's series, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_consumed = Counter(
            "runstream_events_consumed", "Events decoded from the source, by event type.",
            ["event_type"], registry=registry,
        )
        self.points_written = Counter(
            "runstream_points_written", "Rows accepted by ClickHouse, by table.",
            ["table"], registry=registry,
        )
        self.events_rejected = Counter(
            "runstream_events_rejected", "Events or items rejected by validation or limits, by reason.",
            ["reason"], registry=registry,
        )
        self.dlq_messages = Counter(
            "runstream_dlq_messages", "Messages written to the dead-letter topic or folder, by reason.",
            ["reason"], registry=registry,
        )
        self.clickhouse_insert_seconds = Histogram(
            "runstream_clickhouse_insert_seconds", "Time of one insert into ClickHouse.",
            buckets=_INSERT_BUCKETS, registry=registry,
        )
        self.clickhouse_insert_errors = Counter(
            "runstream_clickhouse_insert_errors", "Inserts ClickHouse refused or could not take (each retry counts).",
            registry=registry,
        )
        self.batch_rows = Histogram(
            "runstream_batch_rows", "Rows per flushed batch (all tables).",
            buckets=_ROWS_BUCKETS, registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "runstream_end_to_end_latency_seconds",
            "From an event's creation in the training process to its ClickHouse insert.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.spool_backlog_bytes = Gauge(
            "runstream_spool_backlog_bytes", "Bytes in spool segments not yet ingested (embedded mode) or replayed.",
            registry=registry,
        )
        self.active_runs = Gauge(
            "runstream_active_runs", "Runs this worker has seen start and not yet end.",
            registry=registry,
        )
        for reason in sorted(REJECTION_REASONS):
            self.events_rejected.labels(reason)
            self.dlq_messages.labels(reason)
        for event_type in EVENT_TYPES:
            self.events_consumed.labels(event_type.EVENT_TYPE)
        for table in WRITE_ORDER:
            self.points_written.labels(table)
