"""IngestMetrics: every series with a bounded label set exists, at 0, before the first event (issue 12, item 7)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.metrics import IngestMetrics, REJECTION_REASONS
from consumers.rows import WRITE_ORDER
from consumers.source import SPOOL_ERROR_REASONS
from consumers.validate import REASONS
from schemas import EVENT_TYPES
from schemas.errors import DecodeError


def test_every_known_label_value_is_exported_at_zero_from_the_start() -> None:
    registry = CollectorRegistry()
    IngestMetrics(registry)
    sample = registry.get_sample_value
    assert REJECTION_REASONS == REASONS | DecodeError.REASONS | SPOOL_ERROR_REASONS
    for reason in REJECTION_REASONS:
        assert sample("runstream_events_rejected_total", {"reason": reason}) == 0, reason
        assert sample("runstream_dlq_messages_total", {"reason": reason}) == 0, reason
    for event_type in EVENT_TYPES:
        assert sample("runstream_events_consumed_total", {"event_type": event_type.EVENT_TYPE}) == 0
    for table in WRITE_ORDER:
        assert sample("runstream_points_written_total", {"table": table}) == 0, table
    assert sample("runstream_clickhouse_insert_errors_total") == 0


def test_counts_add_to_the_zero_series() -> None:
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    metrics.events_rejected.labels("too_many_rows").inc(3)
    assert registry.get_sample_value("runstream_events_rejected_total", {"reason": "too_many_rows"}) == 3
    assert registry.get_sample_value("runstream_events_rejected_total", {"reason": "value_too_long"}) == 0
