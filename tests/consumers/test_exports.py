"""Pin the public names of the ingest modules."""

import importlib

import pytest

EXPECTED = {
    "consumers.decode": ["decode_message", "check_key"],
    "consumers.dlq": ["DeadLetter", "DeadLetters", "FolderDeadLetters", "KafkaDeadLetters"],
    "consumers.limits": ["RunCounters", "NewName", "CounterLoader", "StoreCounterLoader", "RunLimiter",
                         "metric_kind"],
    "consumers.message": ["RawMessage"],
    "consumers.metrics": ["IngestMetrics", "REJECTION_REASONS"],
    "consumers.rows": ["TABLE_COLUMNS", "WRITE_ORDER", "RejectionRow", "RowBuffer", "group_rejections"],
    "consumers.service": ["IngestService", "HomeBusy", "Interrupted", "ON_DEMAND_ROLE"],
    "consumers.errors": ["IngestError", "InvalidEvent", "RunLimitExceeded", "SourceError", "DeadLetterError"],
    "consumers.exporter": ["SERIES", "ClickHouseStats", "KafkaReading", "OffsetReader", "PipelineCollector",
                           "Poller", "read_kafka"],
    "consumers.exporter_sources": ["ClickHouseSystemStats", "KafkaAdminOffsets"],
    "consumers.testing": ["InMemorySink", "ListSource", "MemoryDeadLetters", "FixedCounterLoader", "create_topic",
                          "produce", "wait_until"],
    "consumers.source": ["Source", "KafkaSource", "SpoolSource", "ensure_topics", "SPOOL_ERROR_REASONS"],
    "consumers.validate": ["REASONS", "WHOLE_EVENT", "Rejection", "Checked", "Check", "CHECKS", "validate",
                           "attribute_items"],
    "consumers.worker": ["EventSinkLike", "Worker"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned_and_resolvable(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name
