"""Pin the public names of the store's modules."""

import importlib

import pytest

EXPECTED = {
    "store": ["open_store", "server_reads", "EventSink", "QueryRunner", "Store", "TABLES", "ChdbStore",
              "ClickHouseStore", "ClickHouseSettings", "check_database_name", "StoreError", "StoreBusy",
              "OwnerUnavailable", "RunNotFound", "NotVisible", "HomeLock", "query_address", "READ_QUERIES",
              "ReadQueries", "StoreQueries", "QueryClient", "QueryServer", "RunReader", "RunRecord",
              "IMAGE_REF_PREFIX"],
    "store.cluster": ["LOCAL_SUFFIX", "SHARDING_KEY", "EVERY_SERVER_TABLES", "check_cluster_name",
                      "cluster_statements"],
    "store.blocks": ["BlockWriter", "cluster_order", "NUMPY_DTYPES"],
    "store.columns": ["DictColumn"],
    "store.errors": ["StoreError", "StoreBusy", "OwnerUnavailable", "RunNotFound", "FileNotFound", "NotVisible",
                     "sink_error"],
    "store.curves": ["X_AXES", "MAX_WIDTH", "MAX_RUNS", "QUERIES", "Curves", "scalar_curves", "list_curve",
                     "column_curve"],
    "store.run_table": ["STATUSES", "MAX_METRICS", "QUERIES", "effective_status", "Experiments", "MetricColumns",
                        "RunTable", "experiments", "run_table"],
    "store.run_view": ["QUERIES", "TABLE_ROWS_CAP", "LOG_LINES_CAP", "RunDetails", "MetricInfo", "TableRows",
                       "Images", "Files", "LogLines", "run_details", "run_metrics", "table_rows", "images", "files",
                       "read_file", "logs"],
    "store.ui_queries": ["UI_QUERIES"],
    "store.health": ["TableHealth", "read_table_health"],
    "store.home": ["HomeLock", "query_address"],
    "store.queries": ["READ_QUERIES", "ReadQueries", "StoreQueries"],
    "store.query_socket": ["QueryServer", "QueryClient", "SocketLimits", "MAX_FRAME_BYTES"],
    "store.reader": ["RunReader", "RunRecord", "IMAGE_REF_PREFIX"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned_and_resolvable(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name
