import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from producers.errors import InvalidLogCall, InvalidValueType
from producers.values import (
    STEP_LIMIT,
    check_attributes,
    check_name,
    coerce_step,
    coerce_value,
    column_of,
    truncate_middle,
)
from schemas import RunLimits


class TensorLike:
    """A 0-d tensor: ndim 0 and .item()."""

    ndim = 0

    def __init__(self, value: object) -> None:
        self.value = value

    def item(self) -> object:
        return self.value


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.5, 1.5),
        (3, 3.0),
        (True, 1.0),
        (False, 0.0),
        (np.float32(0.25), 0.25),
        (np.float64(2.5), 2.5),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(4.5), 4.5),
        (TensorLike(8), 8.0),
        (Fraction(1, 4), 0.25),
    ],
)
def test_numbers_become_floats(value: object, expected: float) -> None:
    assert coerce_value(value, 255) == (expected, None)


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_kept(special: float) -> None:
    number, text = coerce_value(np.float64(special), 255)
    assert text is None and (math.isnan(number) if math.isnan(special) else number == special)


def test_strings_become_text_with_nan() -> None:
    number, text = coerce_value("Red", 255)
    assert math.isnan(number) and text == "Red"
    assert coerce_value(np.str_("x"), 255)[1] == "x"
    assert coerce_value("a" * 255, 255)[1] == "a" * 255
    with pytest.raises(InvalidLogCall, match="256 characters"):
        coerce_value("a" * 256, 255)


@pytest.mark.parametrize("value", [None, [1.0], {"a": 1}, b"bytes", complex(1, 2), Decimal("1.5"), object()])
def test_unsupported_types_raise_type_errors(value: object) -> None:
    with pytest.raises(InvalidValueType):
        coerce_value(value, 255)
    with pytest.raises(TypeError):  # Azure ML code catching TypeError keeps working
        coerce_value(value, 255)


def test_arrays_with_dimensions_are_not_single_values() -> None:
    with pytest.raises(InvalidValueType, match="log_list"):
        coerce_value(np.array([1.0]), 255)
    with pytest.raises(InvalidValueType, match="returned"):
        coerce_value(TensorLike([1, 2]), 255)


def test_huge_integers_are_a_value_error() -> None:
    with pytest.raises(InvalidLogCall, match="too large"):
        coerce_value(10**400, 255)


def test_names() -> None:
    assert check_name("loss", 255) == "loss"
    with pytest.raises(InvalidLogCall, match="empty"):
        check_name("", 255)
    with pytest.raises(InvalidLogCall, match="256 characters"):
        check_name("n" * 256, 255)
    with pytest.raises(InvalidValueType, match="str"):
        check_name(5, 255)


def test_steps() -> None:
    assert coerce_step(3) == 3 and coerce_step(np.int32(4)) == 4 and coerce_step(-1) == -1
    with pytest.raises(InvalidValueType):
        coerce_step(True)
    with pytest.raises(InvalidValueType):
        coerce_step(1.5)
    with pytest.raises(InvalidLogCall, match="out of range"):
        coerce_step(STEP_LIMIT)


def test_columns_from_any_iterable() -> None:
    column = column_of("c", (x for x in [1, "two", 3.5, np.float32(4)]), 255)
    assert column.name == "c" and column.text_pos == [1] and column.texts == ["two"]
    assert column.values()[0] == 1.0 and column.values()[1] == "two" and column.numbers[2:] == [3.5, 4.0]
    with pytest.raises(InvalidValueType, match="not iterable"):
        column_of("c", 5, 255)
    with pytest.raises(InvalidValueType, match="a str is not a list"):
        column_of("c", "abc", 255)


def test_attributes() -> None:
    limits = RunLimits()
    assert check_attributes({"a": None, "b": 2, "c": "x"}, limits, what="tag", allow_none=True) == {
        "a": None, "b": "2", "c": "x"}
    with pytest.raises(InvalidValueType, match="needs a value"):
        check_attributes({"a": None}, limits, what="property", allow_none=False)
    with pytest.raises(InvalidLogCall, match="key is 101"):
        check_attributes({"k" * 101: "v"}, limits, what="tag", allow_none=True)
    with pytest.raises(InvalidLogCall, match="1001 characters"):
        check_attributes({"k": "v" * 1001}, limits, what="tag", allow_none=True)
    with pytest.raises(InvalidValueType, match="keys must be str"):
        check_attributes({1: "v"}, limits, what="tag", allow_none=True)
    with pytest.raises(InvalidValueType, match="values are str"):
        check_attributes({"k": [1]}, limits, what="tag", allow_none=True)
    with pytest.raises(InvalidLogCall, match="empty"):
        check_attributes({"": "v"}, limits, what="tag", allow_none=True)


def test_truncate_keeps_start_and_end() -> None:
    text = "Traceback (most recent call last):\n" + "x" * 10_000 + "\nValueError: boom"
    cut = truncate_middle(text, 3000)
    assert len(cut) <= 3000
    assert cut.startswith("Traceback") and cut.endswith("ValueError: boom") and "characters cut" in cut
    assert truncate_middle("short", 3000) == "short"
    assert truncate_middle("abcdef", 3) == "def"
