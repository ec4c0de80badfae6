import math
from array import array
from dataclasses import replace

import numpy as np
import pytest

from consumers.columns import ScalarPoints, points_of, scalar_columns
from consumers.errors import InvalidEvent

from . import factory as f
from schemas.packing import split_planes


def test_exports():
    import consumers.columns as m

    assert sorted(m.__all__) == sorted(["ScalarColumns", "ScalarPoints", "scalar_columns", "points_of"])


@pytest.mark.parametrize("packed", [False, True], ids=["lists", "packed"])
def test_both_layouts_read_as_the_same_arrays(packed):
    event = f.scalars(names=["loss", "acc"], points=4, packed=packed)
    cols = scalar_columns(event)
    assert cols.name_idx.dtype == np.int32 and cols.steps.dtype == np.int64
    assert cols.time_ms.dtype == np.int64 and cols.values.dtype == np.float64
    assert cols.name_idx.tolist() == [0, 1] * 4
    assert cols.steps.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert cols.time_ms.tolist() == [f.T0 + s for s in [0, 0, 1, 1, 2, 2, 3, 3]]
    assert cols.values.tolist() == [0.0, 0.1, 1.0, 1.1, 2.0, 2.1, 3.0, 3.1]


def test_packed_name_indexes_are_a_view_of_the_message_bytes():
    event = f.scalars(points=1000, packed=True)
    cols = scalar_columns(event)
    # No copy for plain columns; steps and times are one strided copy per byte plane.
    assert not cols.name_idx.flags.writeable and not cols.values.flags.writeable and cols.steps.flags.writeable


def test_byte_planes_split_and_join_back():
    from schemas.packing import join_planes

    raw = array("d", [1.5, -2.25, math.nan]).tobytes()
    split = split_planes(raw, 8)
    assert split[:3] == bytes(raw[k] for k in (0, 8, 16)) and join_planes(split, 8) == raw
    with pytest.raises(ValueError):
        join_planes(split[:-1], 8)


def test_nan_and_infinities_pass_untouched():
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324]
    event = replace(f.scalars(points=5, packed=True),
                    packed_values=array("d", values).tobytes())
    got = scalar_columns(event).values
    assert array("d", got.tobytes()).tobytes() == array("d", values).tobytes()  # bit for bit


def test_packed_times_become_milliseconds_truncated_like_the_sdk():
    seconds = [1_764_300_000.0009, 1_764_300_000.9999, 0.0, -1.5]
    event = replace(f.scalars(points=4, packed=True),
                    packed_times=split_planes(array("d", seconds).tobytes(), 8))
    assert scalar_columns(event).time_ms.tolist() == [int(s * 1000.0) for s in seconds]


@pytest.mark.parametrize("field, data", [
    ("packed_name_idx", b"\x00" * 7),
    ("packed_steps", b"\x00" * 9),
    ("packed_times", b"\x00" * 4),
    ("packed_values", b"\x00" * 8 * 2),
])
def test_packed_columns_that_do_not_line_up_are_malformed(field, data):
    event = replace(f.scalars(points=3, packed=True), **{field: data})
    with pytest.raises(InvalidEvent) as info:
        scalar_columns(event)
    assert info.value.reason == "malformed_batch"


def test_points_in_both_layouts_at_once_are_malformed():
    event = replace(f.scalars(points=2, packed=True), steps=[1, 2])
    with pytest.raises(InvalidEvent, match="both"):
        scalar_columns(event)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e17])
def test_times_that_are_not_epoch_times_are_malformed(bad):
    event = replace(f.scalars(points=2, packed=True),
                    packed_times=split_planes(array("d", [1.0, bad]).tobytes(), 8))
    with pytest.raises(InvalidEvent) as info:
        scalar_columns(event)
    assert info.value.reason == "malformed_batch"


def test_list_layout_of_unequal_lengths_is_malformed():
    with pytest.raises(InvalidEvent) as info:
        scalar_columns(replace(f.scalars(points=3), steps=[0]))
    assert info.value.reason == "malformed_batch"


def test_scalar_points_carry_the_columns_and_the_envelope():
    event = f.scalars(names=["a", "b"], points=2, packed=True, text={1: "red"})
    points = points_of(event, scalar_columns(event))
    assert isinstance(points, ScalarPoints) and len(points) == 4
    assert (points.run_id, points.seq, points.names, points.text_pos) == (event.run_id, event.seq, ["a", "b"], [1])
    assert repr(points.point_columns()) == repr(event.point_columns())  # NaN at the text point
    assert scalar_columns(points) is points.columns
