"""The logical schema, batch checks, the error helper, and the package's public names."""

import importlib

import pytest

from schemas.errors import ConfigurationError
from consumers.rows import TABLE_COLUMNS
from store.base import LOGICAL_TYPES, TABLES, EventSink, check_batch, check_database_name
from store.errors import StoreBusy, StoreError, sink_error
from consumers.testing import InMemorySink


def test_tables_use_known_logical_types_only():
    assert {t for cols in TABLES.values() for t in cols.values()} == LOGICAL_TYPES


def test_ingest_rows_match_the_logical_schema():
    """The ingest's columnar rows (consumers.rows) must be exactly the store's columns."""
    for table, columns in TABLE_COLUMNS.items():
        assert columns == tuple(TABLES[table]), table
    assert set(TABLES) - set(TABLE_COLUMNS) == {"schema_migrations"}


def test_tables_are_read_only():
    with pytest.raises(TypeError):
        TABLES["x"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        TABLES["runs"]["extra"] = "String"  # type: ignore[index]


def test_check_batch_orders_columns_like_the_table():
    assert check_batch("run_heartbeats", {"interval_ms": [1], "run_id": ["r"]}) == (("run_id", "interval_ms"), 1)
    assert check_batch("runs", {"run_id": []}) == (("run_id",), 0)


@pytest.mark.parametrize("name", ["runstream", "_x", "A1_b", "a" * 64])
def test_good_database_names(name):
    assert check_database_name(name) == name


@pytest.mark.parametrize("name", ["", "1x", "a-b", "a.b", "a b", "a`b", "a" * 65, "é", None])
def test_bad_database_names(name):
    with pytest.raises(ConfigurationError):
        check_database_name(name)


def test_sink_error_retriable_by_code():
    assert sink_error("down").retriable is True
    assert sink_error("busy", code=241).retriable is True
    assert sink_error("syntax", code=62).retriable is False
    assert sink_error("forced", code=62, retriable=True).retriable is True
    err = StoreBusy("held", holder_pid=42)
    assert isinstance(err, StoreError) and err.retriable and err.holder_pid == 42


def test_in_memory_sink_is_an_event_sink():
    assert isinstance(InMemorySink(), EventSink)


EXPECTED = {
    "store.base": ["EventSink", "QueryRunner", "Store", "ReadConnection", "TABLES", "CLUSTER_KEYS", "LOGICAL_TYPES",
                   "check_database_name", "check_batch"],
    "store.chdb": ["ChdbStore", "ChdbReader", "ENGINE_SETTINGS", "READER_SETTINGS", "RESULT_FORMAT", "INSERT_FORMATS"],
    "store.native": ["encode_block", "COLUMN_ENCODERS"],
    "store.clickhouse": ["ClickHouseSettings", "ClickHouseStore", "COMPRESSIONS"],
    "store.migrations": ["MODERN_SINCE", "ServerFeatures", "Migration", "load_migrations",
                                   "bootstrap_template", "render", "apply"],
    "store.rowbinary": ["encode_rows", "leb128", "string_cells", "ENCODERS"],
    "store.sql": ["PLACEHOLDER", "placeholders", "bind_db", "for_driver", "driver_params", "for_chdb",
                            "chdb_value"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_importing_the_store_loads_no_database_client():
    import subprocess
    import sys

    code = ("import sys, store; "
            "print(sorted(m for m in ('chdb', 'clickhouse_driver') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
