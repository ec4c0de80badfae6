"""Pin the public names of the store's modules."""

import importlib

import pytest

EXPECTED = {
    "store": ["open_store", "server_reads", "EventSink", "QueryRunner", "Store", "TABLES", "ChdbStore",
              "ClickHouseStore", "ClickHouseSettings", "check_database_name", "StoreError", "StoreBusy",
              "OwnerUnavailable", "RunNotFound", "NotVisible", "HomeLock", "query_address", "READ_QUERIES",
              "ReadQueries", "StoreQueries", "QueryClient", "QueryServer", "RunReader", "RunRecord",
              "IMAGE_REF_PREFIX"],
    "store.errors": ["StoreError", "StoreBusy", "OwnerUnavailable", "RunNotFound", "NotVisible", "sink_error"],
    "store.health": ["TableHealth", "read_table_health"],
    "store.home": ["HomeLock", "query_address"],
    "store.queries": ["READ_QUERIES", "ReadQueries", "StoreQueries"],
    "store.query_socket": ["QueryServer", "QueryClient", "MAX_FRAME_BYTES"],
    "store.reader": ["RunReader", "RunRecord", "IMAGE_REF_PREFIX"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned_and_resolvable(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name
