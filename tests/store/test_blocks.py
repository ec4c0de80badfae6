"""store.blocks: Native blocks from arrays, dictionary-coded strings and lists, byte for byte what encode_block writes."""

import math

import numpy as np
import pytest

from store.base import CLUSTER_KEYS, TABLES
from store.blocks import BlockWriter, cluster_order
from store.columns import DictColumn
from store.native import encode_block

NAMES = ["s", "d", "n", "u", "f", "b", "a", "t"]
TYPES = ["String", "String", "Int64", "UInt32", "Float64", "String", "Array(Float64)", "UInt8"]


def _columns():
    return [["a", "b", "c", "d", "é"], DictColumn(["x", "yy", ""], np.array([1, 1, 0, 2, 1], dtype=np.int32)),
            np.array([1, -2, 3, 4, 5]), np.array([1, 2, 3, 4, 5], dtype=np.int64),
            np.array([math.nan, math.inf, -math.inf, -0.0, 1.0]), [b"\x00\xff", "t", "u", "v", "w"],
            [[1.0], [], [2.0, 3.0], [], [math.nan]], np.array([True, False, True, False, False])]


def _plain(col):
    return col.tolist() if isinstance(col, np.ndarray) else list(col)


def test_mixed_columns_encode_like_lists():
    cols = _columns()
    assert bytes(BlockWriter().encode(NAMES, TYPES, cols)) == encode_block(NAMES, TYPES, [_plain(c) for c in cols])


def test_dictionary_columns_by_runs_and_gathered_per_row():
    writer = BlockWriter()
    runs = DictColumn(["p", "qq"], np.array([0] * 10 + [1] * 10, dtype=np.int32))
    alternating = DictColumn(["p", "qq", "é"], np.array([0, 1, 2] * 7, dtype=np.int32))
    for col in (runs, alternating, DictColumn(["only"], np.zeros(3, dtype=np.int32))):
        assert bytes(writer.encode(["s"], ["String"], [col])) == encode_block(["s"], ["String"], [list(col)])


def test_the_buffer_is_reused_and_each_view_is_the_latest_block():
    writer = BlockWriter()
    big = writer.encode(["n"], ["Int64"], [np.arange(1000)])
    assert len(big) > 8000
    small = bytes(writer.encode(["n"], ["Int64"], [np.arange(3)]))
    assert small == encode_block(["n"], ["Int64"], [[0, 1, 2]])


def test_empty_block_and_serialization_flags():
    writer = BlockWriter()
    cols = [DictColumn(["x"], np.zeros(0, dtype=np.int32)), np.zeros(0, dtype=np.int64)]
    assert bytes(writer.encode(["s", "n"], ["String", "Int64"], cols)) == encode_block(["s", "n"], ["String", "Int64"],
                                                                                     [[], []])
    flagged = bytes(writer.encode(["n"], ["Int64"], [np.array([7])], serialization_flags=True))
    assert flagged == b"\x01\x01" + b"\x01n" + b"\x05Int64" + b"\x00" + (7).to_bytes(8, "little")


def test_cluster_order_groups_rows_by_the_key_prefix_keeping_their_order():
    exp = DictColumn(["e"], np.zeros(6, dtype=np.int32))
    name = DictColumn(["loss", "acc"], np.array([0, 1, 0, 1, 0, 1], dtype=np.int32))
    run = DictColumn(["r2", "r1"], np.array([0, 0, 0, 1, 1, 1], dtype=np.int32))
    step = np.array([0, 0, 1, 0, 1, 1])
    cols = {"experiment": exp, "name": name, "run_id": run, "step": step}
    order = cluster_order(cols, CLUSTER_KEYS["metric_scalars"])
    rows = [(name[i], run[i], int(step[i])) for i in order]
    # acc < loss and r1 < r2 as ClickHouse compares strings; steps keep their order inside a group
    assert rows == [("acc", "r1", 0), ("acc", "r1", 1), ("acc", "r2", 0), ("loss", "r1", 1), ("loss", "r2", 0),
                    ("loss", "r2", 1)]
    writer = BlockWriter()
    block = writer.encode(["name", "step"], ["String", "Int64"], [name, step], order=order)
    assert bytes(block) == encode_block(["name", "step"], ["String", "Int64"],
                                        [[r[0] for r in rows], [r[2] for r in rows]])


def test_cluster_order_is_none_when_already_grouped_or_not_dictionary_coded():
    grouped = DictColumn(["a", "b"], np.array([0, 0, 1], dtype=np.int32))
    assert cluster_order({"name": grouped}, ["name"]) is None
    assert cluster_order({"name": ["b", "a"]}, ["name"]) is None
    assert cluster_order({}, []) is None


@pytest.mark.parametrize("typ, col, error", [
    ("UInt32", np.array([-1]), OverflowError),
    ("UInt32", np.array([2**40]), OverflowError),
    ("UInt8", np.array([256]), OverflowError),
    ("Int64", np.array([1.5]), TypeError),
    ("String", np.array([1]), TypeError),
    ("Int64", DictColumn(["x"], np.zeros(1, dtype=np.int32)), TypeError),
    ("Int64", [1.5], TypeError),
    ("String", DictColumn(["\ud800"], np.zeros(1, dtype=np.int32)), UnicodeEncodeError),
])
def test_values_a_column_cannot_hold_are_refused(typ, col, error):
    with pytest.raises(error):
        BlockWriter().encode(["c"], [typ], [col])


def test_integer_arrays_of_another_width_are_converted_when_they_fit():
    writer = BlockWriter()
    assert bytes(writer.encode(["u"], ["UInt32"], [np.array([1, 2], dtype=np.int64)])) == encode_block(
        ["u"], ["UInt32"], [[1, 2]])
    assert bytes(writer.encode(["f"], ["Float64"], [np.array([1, 2], dtype=np.int32)])) == encode_block(
        ["f"], ["Float64"], [[1.0, 2.0]])


def test_every_cluster_key_is_a_leading_string_column_of_its_table():
    for table, keys in CLUSTER_KEYS.items():
        assert all(TABLES[table][k] == "String" for k in keys)


def test_ragged_columns_are_refused():
    with pytest.raises(ValueError):
        BlockWriter().encode(["a", "b"], ["Int64", "Int64"], [np.arange(2), np.arange(3)])
