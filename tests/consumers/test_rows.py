import math

import numpy as np

from store.columns import DictColumn

from consumers.limits import NewName
from consumers.rows import TABLE_COLUMNS, WRITE_ORDER, RowBuffer, group_rejections
from consumers.validate import Rejection

from . import factory as f


def tables(buffer, now_ms=123):
    return {t: cols for t, cols in buffer.tables(now_ms)}


def rows_of(cols):
    names = list(cols)
    return [dict(zip(names, vals)) for vals in zip(*(cols[n] for n in names))]


def test_scalar_rows_keep_identity_and_skip_rejected_points():
    event = f.scalars(names=["loss", "cat"], points=2, text={1: "red"}, seq=5)
    buffer = RowBuffer()
    buffer.add(event, {2: Rejection("x", "", 2)}, [NewName("loss", "scalar", "")])
    t = tables(buffer)
    rows = rows_of(t["metric_scalars"])
    assert [(r["name"], r["step"], r["idx"], r["is_text"], r["text"]) for r in rows] == [
        ("loss", 0, 0, 0, ""), ("cat", 0, 1, 1, "red"), ("cat", 1, 3, 0, "")]
    assert all(r["seq"] == 5 and r["writer_id"] == "w1" for r in rows)
    assert math.isnan(rows[1]["value"])
    assert rows_of(t["metric_names"])[0]["name"] == "loss"
    assert rows_of(t["writer_progress"]) == [
        {"writer_id": "w1", "run_id": "run_1", "experiment": "exp", "seq": 5, "updated_ms": 123}]
    assert list(t)[-1] == "writer_progress"
    assert list(t.keys()) == [n for n in WRITE_ORDER if n in t]


def test_every_table_uses_exactly_its_columns():
    buffer = RowBuffer()
    for event in [f.started(), f.status(error="boom"), f.heartbeat(), f.tags(values={"a": None}), f.properties(),
                  f.scalars(), f.list_logged(), f.row(x=1, y="s"), f.table(), f.image(), f.chunk(), f.logs()]:
        buffer.add(event, {}, [])
    buffer.reject(run_id="r", experiment="e", reason="empty", detail="", event_type="", source="s",
                  source_offset=1, item=-1, created_ms=0, rejected_ms=0)
    t = tables(buffer)
    assert set(t) == set(TABLE_COLUMNS) - {"metric_names"}
    for name, cols in t.items():
        assert tuple(cols) == TABLE_COLUMNS[name]
        assert len({len(v) for v in cols.values()}) == 1
    status = rows_of(t["run_status"])
    assert [s["status"] for s in status] == ["Running", "Completed"]
    attrs = rows_of(t["run_attributes"])
    assert {(a["kind"], a["key"], a["has_value"]) for a in attrs} >= {("tag", "flag", 0), ("tag", "team", 1),
                                                                     ("property", "lr", 1), ("tag", "a", 0)}


def test_list_row_table_shapes():
    buffer = RowBuffer()
    buffer.add(f.list_logged(values=[1, 2]), {}, [])
    buffer.add(f.row(x=1, label="a"), {}, [])
    buffer.add(f.table(columns={"label": ["cat", "dog"], "count": [3, 4]}), {}, [])
    rows = rows_of(tables(buffer)["metric_rows"])
    assert [(r["kind"], r["row_idx"], r["col_names"], r["col_numbers"][-1]) for r in rows if r["kind"] != "row"] == [
        ("list", 0, ["accs"], 1.0), ("list", 1, ["accs"], 2.0),
        ("table", 0, ["label", "count"], 3.0), ("table", 1, ["label", "count"], 4.0)]
    table_rows = [r for r in rows if r["kind"] == "table"]
    assert [r["col_texts"][0] for r in table_rows] == ["cat", "dog"]
    assert [r["col_is_text"] for r in table_rows] == [[1, 0], [1, 0]]


def test_clear_empties_everything():
    buffer = RowBuffer()
    buffer.add(f.scalars(), {}, [])
    assert buffer.rows == 3
    buffer.clear()
    assert buffer.rows == 0 and tables(buffer) == {}


def test_rejections_grouped_per_reason_and_metric():
    event = f.scalars(names=["a", "b"], points=3)
    rejected = {i: Rejection("too_many_metric_names", "no room", i) for i in (1, 3, 5)}
    rejected[0] = Rejection("value_too_long", "long", 0)
    groups = group_rejections(event, rejected)
    assert [(g.reason, g.item, g.items) for g in groups] == [("value_too_long", 0, 1),
                                                             ("too_many_metric_names", 1, 3)]
    assert "3 points" in groups[1].detail


def test_columns_match_the_store_schema():
    from store import TABLES

    for table, columns in TABLE_COLUMNS.items():
        assert table in TABLES, table
        assert set(columns) == set(TABLES[table]), table


def _scalar_rows(*events_and_rejections):
    buffer = RowBuffer()
    for event, rejected in events_and_rejections:
        buffer.add(event, rejected, [])
    return rows_of(tables(buffer)["metric_scalars"])


def test_packed_and_list_batches_give_the_same_rows():
    reject = {2: Rejection("x", "", 2)}
    lists = _scalar_rows((f.scalars(names=["loss", "cat"], points=3, text={1: "red"}, seq=5), reject))
    packed = _scalar_rows((f.scalars(names=["loss", "cat"], points=3, text={1: "red"}, seq=5, packed=True), reject))
    assert repr(packed) == repr(lists)  # NaN at the text point
    assert [r["idx"] for r in packed] == [0, 1, 3, 4, 5]
    assert [(r["is_text"], r["text"]) for r in packed][:2] == [(0, ""), (1, "red")]


def test_a_batch_mixing_both_versions_keeps_every_row_in_message_order():
    rows = _scalar_rows((f.scalars("r1", names=["a"], points=2, seq=1), {}),
                        (f.scalars("r2", names=["b", "a"], points=1, seq=2, packed=True, writer_id="w2"), {}),
                        (f.scalars("r1", names=["a"], points=1, seq=3, start_step=2, experiment="other"), {}))
    assert [(r["experiment"], r["run_id"], r["name"], r["step"], r["writer_id"], r["seq"], r["idx"]) for r in rows] == [
        ("exp", "r1", "a", 0, "w1", 1, 0), ("exp", "r1", "a", 1, "w1", 1, 1),
        ("exp", "r2", "b", 0, "w2", 2, 0), ("exp", "r2", "a", 0, "w2", 2, 1),
        ("other", "r1", "a", 2, "w1", 3, 0)]
    assert all(r["created_ms"] == f.T0 and r["time_ms"] >= f.T0 for r in rows)


def test_message_ranges_slice_the_scalar_columns():
    buffer = RowBuffer()
    for owner, event in enumerate([f.scalars("r1", points=2), f.scalars("r2", points=3, packed=True)]):
        buffer.owner = owner
        buffer.add(event, {}, [])
    cols = tables(buffer)["metric_scalars"]
    assert isinstance(cols["name"], DictColumn) and isinstance(cols["step"], np.ndarray)
    ranges = buffer.owner_ranges("metric_scalars")
    assert ranges == [(0, 0, 2), (1, 2, 5)]
    part = {c: v[2:5] for c, v in cols.items()}
    assert {r["run_id"] for r in rows_of(part)} == {"r2"} and len(rows_of(part)) == 3
