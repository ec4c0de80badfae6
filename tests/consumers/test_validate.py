import math
from array import array
from dataclasses import replace

import pytest

from consumers.columns import ScalarPoints
from consumers.errors import InvalidEvent
from consumers.validate import REASONS, WHOLE_EVENT, validate
from schemas import Column, LogLine, RunLimits, ScalarBatch

from . import factory as f
from schemas.packing import split_planes

LIMITS = RunLimits()


def reason_of(event):
    with pytest.raises(InvalidEvent) as info:
        validate(event, LIMITS)
    assert info.value.reason in REASONS
    return info.value.reason


def test_valid_events_pass_untouched():
    for event in [f.started(), f.status(), f.heartbeat(), f.tags(), f.properties(), f.scalars(), f.list_logged(),
                  f.row(x=1, y="a"), f.table(), f.image(), f.chunk(), f.logs()]:
        checked = validate(event, LIMITS)
        if isinstance(event, ScalarBatch):
            # Scalars come out as the same points in arrays (ScalarPoints), whatever the layout in.
            assert isinstance(checked.event, ScalarPoints)
            assert checked.event.point_columns() == event.point_columns()
            assert (checked.event.run_id, checked.event.seq, checked.event.names) == (event.run_id, event.seq,
                                                                                       event.names)
        else:
            assert checked.event == event
        assert checked.rejected == {}


def test_envelope():
    assert reason_of(replace(f.scalars(), run_id="")) == "missing_id"
    assert reason_of(replace(f.scalars(), experiment="x" * 257)) == "id_too_long"
    assert reason_of(replace(f.scalars(), writer_id="bad-id")) == "bad_envelope"
    assert reason_of(replace(f.scalars(), seq=0)) == "bad_envelope"
    assert reason_of(replace(f.started(), display_name="d" * 300)) == "id_too_long"


@pytest.mark.parametrize("change", [
    dict(steps=[0]),                         # unequal point arrays
    dict(descriptions=[]),                   # names vs descriptions
    dict(text_pos=[0], text_values=[]),      # text arrays
    dict(text_pos=[99], text_values=["x"]),  # text position out of range
    dict(text_pos=[0, 0], text_values=["x", "y"]),
])
def test_structurally_inconsistent_scalar_batch_is_rejected_whole(change):
    assert reason_of(replace(f.scalars(points=3), **change)) == "malformed_batch"


@pytest.mark.parametrize("change", [
    dict(packed_steps=b"\x00" * 8),                        # unequal packed columns
    dict(packed_values=b"\x00" * 23),                      # not whole float64s
    dict(packed_times=split_planes(array("d", [1.0, math.nan, 2.0]).tobytes(), 8)),  # not an epoch time
    dict(values=[1.0, 2.0, 3.0]),                           # points in both layouts
    dict(descriptions=[]),
    dict(text_pos=[99], text_values=["x"]),
])
def test_structurally_inconsistent_packed_batch_is_rejected_whole(change):
    assert reason_of(replace(f.scalars(points=3, packed=True), **change)) == "malformed_batch"


@pytest.mark.parametrize("packed", [False, True], ids=["lists", "packed"])
def test_bad_name_index_rejects_only_that_point(packed):
    event = f.scalars(names=["a", "b"], points=2, packed=packed)
    if packed:
        event = replace(event, packed_name_idx=array("i", [0, 1, 7, -1]).tobytes())
    else:
        event = replace(event, name_idx=[0, 1, 7, -1])
    checked = validate(event, LIMITS)
    assert set(checked.rejected) == {2, 3}
    assert checked.rejected[2].reason == checked.rejected[3].reason == "bad_name_index"


@pytest.mark.parametrize("packed", [False, True], ids=["lists", "packed"])
def test_nan_and_infinities_are_kept(packed):
    event = f.scalars(points=3, packed=packed)
    values = [math.nan, math.inf, -math.inf]
    if packed:
        event = replace(event, packed_values=array("d", values).tobytes())
    else:
        event = replace(event, values=values)
    checked = validate(event, LIMITS)
    assert checked.rejected == {}
    assert repr(checked.event.point_columns()[3]) == repr(values)


@pytest.mark.parametrize("packed", [False, True], ids=["lists", "packed"])
def test_long_name_and_long_text_reject_their_points_only(packed):
    event = f.scalars(names=["ok", "n" * 256], points=2, text={0: "t" * 256}, packed=packed)
    checked = validate(event, LIMITS)
    # point 0 = ok@0 (long text), 1 = long@0, 2 = ok@1, 3 = long@1
    assert {i: r.reason for i, r in checked.rejected.items()} == {
        0: "value_too_long", 1: "metric_name_too_long", 3: "metric_name_too_long"}


def test_columns():
    assert reason_of(f.row(**{f"c{i}": i for i in range(16)})) == "too_many_columns"
    assert reason_of(f.row(**{"c" * 256: 1})) == "column_name_too_long"
    assert reason_of(f.row(x="v" * 256)) == "value_too_long"
    assert reason_of(f.table(columns={"a": [1, 2], "b": [1]})) == "bad_column"
    bad = f.row(x=1)
    assert reason_of(replace(bad, columns=[Column("x", [1.0, 2.0])])) == "bad_column"
    assert reason_of(replace(bad, columns=[Column("x", [1.0]), Column("x", [2.0])])) == "bad_column"
    assert reason_of(replace(bad, columns=[Column("x", [1.0], [3], ["t"])])) == "bad_column"
    assert reason_of(f.list_logged(name="")) == "empty_metric_name"


def test_attributes_item_by_item():
    event = f.started(tags={"ok": "1", "k" * 101: "x", "v": "x" * 1001}, properties={"": "p", "fine": "p"})
    checked = validate(event, LIMITS)
    assert {i: r.reason for i, r in checked.rejected.items()} == {
        1: "attribute_key_too_long", 2: "attribute_value_too_long", 3: "empty_attribute_key"}


def test_status_and_error_details():
    assert reason_of(f.status(value="Exploded")) == "bad_status"
    checked = validate(f.status(value="Failed", error="e" * 5000), LIMITS)
    assert checked.event.error_details == "e" * 3000
    assert checked.rejected == {}


def test_images_files_logs():
    assert reason_of(f.image(size=LIMITS.max_image_bytes + 1)) == "image_too_large"
    assert reason_of(replace(f.chunk(), chunk_index=1)) == "bad_file_chunk"
    assert reason_of(replace(f.chunk(), total_size=LIMITS.max_file_bytes + 1)) == "file_too_large"
    assert reason_of(replace(f.chunk(), sha256="xyz")) == "bad_file_chunk"
    event = f.logs(messages=["fine", "x" * (LIMITS.max_log_line_length + 1)])
    checked = validate(event, LIMITS)
    assert {i: r.reason for i, r in checked.rejected.items()} == {1: "log_line_too_long"}
    odd = replace(event, lines=[LogLine(1, "weird", "", 20, "m")])
    assert validate(odd, LIMITS).rejected[0].reason == "bad_log_line"


def test_nan_and_inf_values_are_valid():
    event = replace(f.scalars(points=3), values=[math.nan, math.inf, -math.inf])
    assert validate(event, LIMITS).rejected == {}


def test_whole_event_marker():
    assert WHOLE_EVENT == -1
