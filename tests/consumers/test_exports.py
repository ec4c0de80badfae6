"""Pin the public names of the ingest modules (and producers.reading)."""

import importlib

import pytest

EXPECTED = {
    "consumers.cli": ["COMMANDS", "build_parser", "main"],
    "consumers.config": ["DEFAULT_TOPIC", "DEFAULT_GROUP", "DEFAULT_DLQ_TOPIC", "DEFAULT_METRICS_PORT", "DEFAULT_HOME",
                         "IngestConfig", "resolve_home"],
    "consumers.decode": ["decode_message", "check_key"],
    "consumers.dlq": ["DeadLetter", "DeadLetters", "FolderDeadLetters", "KafkaDeadLetters"],
    "consumers.limits": ["RunCounters", "NewName", "CounterLoader", "StoreCounterLoader", "RunLimiter",
                         "metric_kind"],
    "consumers.message": ["RawMessage"],
    "consumers.ownership": ["HomeLock", "query_address"],
    "consumers.query_server": ["QueryServer", "QueryClient", "QueryServerUnavailable"],
    "consumers.rows": ["TABLE_COLUMNS", "WRITE_ORDER", "RejectionRow", "RowBuffer", "group_rejections"],
    "consumers.service": ["IngestService", "LockedStore", "drain_spool", "HomeBusy", "Interrupted"],
    "consumers.source": ["Source", "KafkaSource", "SpoolSource", "ensure_topics", "SPOOL_ERROR_REASONS"],
    "consumers.validate": ["REASONS", "WHOLE_EVENT", "Rejection", "Checked", "Check", "CHECKS", "validate",
                           "attribute_items"],
    "consumers.worker": ["EventSinkLike", "Worker"],
    "consumers.jobs_cli": ["register"],
    "producers.reading": ["ReadSettings", "RunRecord", "RunReader", "IMAGE_REF_PREFIX"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned_and_resolvable(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name
