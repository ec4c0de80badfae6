"""Call-time checks and conversions of logged values, names, steps, tags and properties.

Every function here either returns the value in its wire form or raises
:class:`InvalidLogCall` / :class:`InvalidValueType`; none has side effects, so a
logging call that fails a check has logged nothing.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from typing import Any, Iterable, Mapping

from schemas.limits import RunLimits
from schemas.records import Column

from .errors import InvalidLogCall, InvalidValueType

__all__ = [
    "NAN",
    "STEP_LIMIT",
    "coerce_value",
    "check_name",
    "coerce_step",
    "column_of",
    "check_attributes",
    "truncate_middle",
    "check_experiment_name",
]

NAN = math.nan
# Explicit steps stay well inside int64 so the per-name default counter (last step + 1)
# can never overflow the int64 step column on the hot path.
STEP_LIMIT = 2**62


def coerce_value(value: Any, max_text: int) -> tuple[float, str | None]:
    """One metric value as ``(number, text)``: text is None for numbers; NaN stands in for a string.

    Accepts int, float, bool, strings up to ``max_text`` characters, numpy
    scalars and 0-d arrays, and any object with ``.item()`` returning one of
    those (0-d tensors). NaN and infinities are kept as they are.
    """
    kind = type(value)
    if kind is float:
        return value, None
    if kind is int or kind is bool:
        return _int_to_float(value), None
    if isinstance(value, str):
        if len(value) > max_text:
            raise InvalidLogCall(f"string value is {len(value)} characters; the limit is {max_text}")
        return NAN, str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidValueType("bytes cannot be logged as a metric value; decode them to str first")
    ndim = getattr(value, "ndim", None)
    if ndim is not None and ndim != 0:
        raise InvalidValueType(
            f"a {ndim}-dimensional {type(value).__name__} is not a single value; use log_list or log_table"
        )
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()
        except (TypeError, ValueError) as exc:
            raise InvalidValueType(f"{type(value).__name__}.item() failed: {exc}") from exc
        if type(inner) in (float, int, bool) or isinstance(inner, str):
            return coerce_value(inner, max_text)
        raise InvalidValueType(f"{type(value).__name__}.item() returned {type(inner).__name__}, not a number or str")
    if isinstance(value, numbers.Integral):
        return _int_to_float(int(value)), None
    if isinstance(value, numbers.Real):
        return float(value), None
    raise InvalidValueType(
        f"cannot log a {type(value).__name__}; metric values are int, float, bool, str or numpy scalars"
    )


def _int_to_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError as exc:
        raise InvalidLogCall(f"integer {value} is too large for a float64 metric") from exc


def check_name(name: Any, limit: int, what: str = "metric name") -> str:
    """A metric or column name: a non-empty str of at most ``limit`` characters."""
    if not isinstance(name, str):
        raise InvalidValueType(f"{what} must be a str, got {type(name).__name__}")
    text = str(name)  # a str subclass (numpy.str_) becomes a plain str
    if not text:
        raise InvalidLogCall(f"{what} must not be empty")
    if len(text) > limit:
        raise InvalidLogCall(f"{what} is {len(text)} characters; the limit is {limit}: {text[:40]!r}...")
    return text


def coerce_step(step: Any) -> int:
    """An explicit step: an integer (numpy integers too, bools not) with ``abs(step) < 2**62``."""
    if isinstance(step, bool):
        raise InvalidValueType("step must be an integer, not a bool")
    try:
        value = operator.index(step)
    except TypeError:
        raise InvalidValueType(f"step must be an integer, got {type(step).__name__}") from None
    if not -STEP_LIMIT < value < STEP_LIMIT:
        raise InvalidLogCall(f"step {value} is out of range (|step| < 2**62)")
    return value


def column_of(name: str, values: Iterable[Any], max_text: int) -> Column:
    """A :class:`Column` from any iterable of metric values (generators included)."""
    numbers_out: list[float] = []
    text_pos: list[int] = []
    texts: list[str] = []
    try:
        iterator = iter(values)
    except TypeError:
        raise InvalidValueType(f"{type(values).__name__} is not iterable") from None
    if isinstance(values, (str, bytes)):
        raise InvalidValueType("a str is not a list of values; wrap it in a list")
    append = numbers_out.append
    for position, value in enumerate(iterator):
        if type(value) is float:
            append(value)
            continue
        number, text = coerce_value(value, max_text)
        append(number)
        if text is not None:
            text_pos.append(position)
            texts.append(text)
    return Column(name, numbers_out, text_pos, texts)


def check_attributes(
    items: Mapping[str, Any],
    limits: RunLimits,
    *,
    what: str,
    allow_none: bool,
) -> dict[str, str | None]:
    """Tag or property keys/values checked and converted to str (None kept for valueless tags)."""
    out: dict[str, str | None] = {}
    for key, value in items.items():
        if not isinstance(key, str):
            raise InvalidValueType(f"{what} keys must be str, got {type(key).__name__}")
        if not key:
            raise InvalidLogCall(f"{what} keys must not be empty")
        if len(key) > limits.max_attribute_key_length:
            raise InvalidLogCall(
                f"{what} key is {len(key)} characters; the limit is {limits.max_attribute_key_length}: {key[:40]!r}..."
            )
        if value is None:
            if not allow_none:
                raise InvalidValueType(f"{what} {key!r} needs a value")
            out[key] = None
            continue
        if isinstance(value, str):
            text = value
        elif isinstance(value, (bool, int, float)) or isinstance(value, numbers.Number):
            text = str(value)
        else:
            raise InvalidValueType(f"{what} {key!r}: values are str (or numbers), got {type(value).__name__}")
        if len(text) > limits.max_attribute_value_length:
            raise InvalidLogCall(
                f"{what} {key!r} value is {len(text)} characters; the limit is {limits.max_attribute_value_length}"
            )
        out[key] = text
    return out


def truncate_middle(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters keeping its start and (longer) end, where a traceback says what failed."""
    if len(text) <= limit:
        return text
    marker = "\n...[{} characters cut]...\n"
    room = limit - len(marker.format(len(text)))
    if room < 2:
        return text[-limit:]
    head = room // 3
    tail = room - head
    return text[:head] + marker.format(len(text) - room) + text[len(text) - tail :]


# Azure ML's rule: letters, digits, '_' and '-', starting with a letter or digit.
_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_experiment_name(name: Any, limit: int) -> str:
    """An experiment name: 1-``limit`` characters of ``[A-Za-z0-9_-]``, starting with a letter or digit."""
    if not isinstance(name, str):
        raise InvalidValueType(f"experiment name must be a str, got {type(name).__name__}")
    if not _EXPERIMENT_NAME.fullmatch(name):
        raise InvalidLogCall(
            f"experiment name {name!r} must be letters, digits, '_' or '-', starting with a letter or digit"
        )
    if len(name) > limit:
        raise InvalidLogCall(f"experiment name is {len(name)} characters; the limit is {limit}")
    return name
