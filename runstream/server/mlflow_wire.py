"""MLflow's JSON wire format, as the mlflow 3.x client speaks it.

- Errors are ``{"error_code", "message"}`` with MLflow's code names and HTTP
  statuses; the client acts on ``error_code`` (``get_experiment_by_name``
  returns None only for ``RESOURCE_DOES_NOT_EXIST``).
- Floats may be NaN or infinite: they travel as the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` both ways (protobuf's JSON mapping); a bare
  ``NaN`` token is not JSON and the client's parser refuses it.
- 64-bit integers arrive as numbers or as strings; ids are always strings.
- GET requests carry their fields as query parameters (all strings, lists as
  repeated keys), POST requests as a JSON object.
- Page tokens are opaque to the client: base64 of ``{"offset": n}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Mapping

from schemas.errors import PipelineError

from .mlflow_backend import NO_METRICS, MetricColumns

__all__ = [
    "ERROR_STATUS",
    "MlflowError",
    "RequestFields",
    "float_to_wire",
    "float_from_wire",
    "metric_columns",
    "dumps",
    "encode_page_token",
    "decode_page_token",
]

ERROR_STATUS: Mapping[str, int] = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_STATE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
}
"""HTTP status of each MLflow error code the server answers with."""

_RETRIABLE_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"})


class MlflowError(PipelineError):
    """A request the server answers with an MLflow error body.

    ``retriable`` follows the status: the client itself retries 429/500/503.
    """

    def __init__(self, error_code: str, message: str) -> None:
        if error_code not in ERROR_STATUS:
            raise ValueError(f"unknown MLflow error code {error_code!r}")
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.retriable = error_code in _RETRIABLE_CODES

    @property
    def http_status(self) -> int:
        """The HTTP status MLflow's server uses for this code."""
        return ERROR_STATUS[self.error_code]

    def body(self) -> dict[str, str]:
        """The JSON object the client parses."""
        return {"error_code": self.error_code, "message": self.message}

    @classmethod
    def invalid(cls, message: str) -> MlflowError:
        """``INVALID_PARAMETER_VALUE`` (400), the code of almost every refusal."""
        return cls("INVALID_PARAMETER_VALUE", message)

    @classmethod
    def not_found(cls, message: str) -> MlflowError:
        """``RESOURCE_DOES_NOT_EXIST`` (404)."""
        return cls("RESOURCE_DOES_NOT_EXIST", message)


def float_to_wire(value: float) -> float | str:
    """``value`` as MLflow's JSON carries it: non-finite values become strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def float_from_wire(raw: object, name: str) -> float:
    """A float field: a JSON number, or a string protobuf's JSON mapping accepts."""
    if isinstance(raw, bool):
        raise _bad_value(name, raw)
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        special = _SPECIAL_FLOATS.get(raw)
        if special is not None:
            return special
        try:
            value = float(raw)
        except ValueError:
            raise _bad_value(name, raw) from None
        if math.isfinite(value):
            return value
    raise _bad_value(name, raw)


def _int_from_wire(raw: object, name: str) -> int:
    if isinstance(raw, bool):
        raise _bad_value(name, raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise _bad_value(name, raw)


def metric_columns(raw: object) -> MetricColumns:
    """The ``metrics`` list of a ``log-batch`` body (``{key, value, timestamp, step?}`` objects), as columns.

    The hot path of every ``log_batch`` (1,000 points a call): the common
    shape (objects with a str key, a float value, int timestamp and step) is
    taken column by column and checked in bulk; anything else goes through
    :func:`_metric_columns_one_by_one`, which converts what protobuf's JSON
    mapping allows and names the first bad field.
    """
    if raw is None:
        return NO_METRICS
    if not isinstance(raw, list):
        raise _bad_value("metrics", raw)
    if not raw:
        return NO_METRICS
    try:
        keys = [m["key"] for m in raw]
        values = [m["value"] for m in raw]
        timestamps = [m["timestamp"] for m in raw]
        steps = [m.get("step", 0) for m in raw]
    except (KeyError, TypeError, AttributeError):  # not all objects, or a field missing: say which
        return _metric_columns_one_by_one(raw)
    if (set(map(type, keys)) != _STR or "" in keys or set(map(type, values)) != _FLOAT
            or set(map(type, timestamps)) != _INT or set(map(type, steps)) != _INT):
        return _metric_columns_one_by_one(raw)
    return MetricColumns(keys, values, timestamps, steps)


_STR, _FLOAT, _INT = {str}, {float}, {int}


def _metric_columns_one_by_one(raw: list[Any]) -> MetricColumns:
    keys: list[str] = []
    values: list[float] = []
    timestamps: list[int] = []
    steps: list[int] = []
    for item in raw:
        if type(item) is not dict:
            raise _bad_value("metrics", item)
        key = item.get("key")
        value = item.get("value")
        timestamp = item.get("timestamp")
        step = item.get("step", 0)
        if type(key) is not str or not key:
            raise _missing("key") if not key else _bad_value("key", key)
        if type(value) is not float:
            if value is None:
                raise _missing("value")
            value = float_from_wire(value, "value")
        if type(timestamp) is not int:
            if timestamp is None:
                raise _missing("timestamp")
            timestamp = _int_from_wire(timestamp, "timestamp")
        if type(step) is not int:
            step = 0 if step is None or step == "" else _int_from_wire(step, "step")
        keys.append(key)
        values.append(value)
        timestamps.append(timestamp)
        steps.append(step)
    return MetricColumns(keys, values, timestamps, steps)


def _bad_value(name: str, raw: object) -> MlflowError:
    return MlflowError.invalid(
        f"Invalid value {raw!r} for parameter '{name}' supplied (a {type(raw).__name__})"
    )


def _missing(name: str) -> MlflowError:
    return MlflowError.invalid(f"Missing value for required parameter '{name}'.")


class RequestFields:
    """The fields of one request, from a JSON body or from query parameters.

    Query parameters are strings (a repeated key gives a list); JSON values are
    whatever the client sent. Every getter names the field in its error.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def raw(self, name: str) -> Any:
        """The value as received, or None."""
        return self._data.get(name)

    def text(self, name: str, *, alias: str | None = None) -> str:
        """A required non-empty string (``alias``: an older name for the same field, e.g. ``run_uuid``)."""
        value = self.opt_text(name)
        if not value and alias is not None:
            value = self.opt_text(alias)
        if not value:
            raise _missing(name)
        return value

    def opt_text(self, name: str) -> str | None:
        """An optional string."""
        raw = self._data.get(name)
        if raw is None:
            return None
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            raise _bad_value(name, raw)
        return raw

    def opt_integer(self, name: str) -> int | None:
        """An optional 64-bit integer (number or string)."""
        raw = self._data.get(name)
        if raw is None or raw == "":
            return None
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        return _int_from_wire(raw, name)

    def integer(self, name: str) -> int:
        """A required 64-bit integer."""
        value = self.opt_integer(name)
        if value is None:
            raise _missing(name)
        return value

    def number(self, name: str) -> float:
        """A required float (``"NaN"``, ``"Infinity"``, ``"-Infinity"`` accepted)."""
        raw = self._data.get(name)
        if raw is None:
            raise _missing(name)
        return float_from_wire(raw, name)

    def texts(self, name: str) -> list[str]:
        """A list of strings (a single query value counts as a list of one)."""
        raw = self._data.get(name)
        if raw is None:
            return []
        if isinstance(raw, str):
            return [raw]
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise _bad_value(name, raw)
        return list(raw)

    def objects(self, name: str) -> list[RequestFields]:
        """A list of JSON objects (metrics, params, tags)."""
        raw = self._data.get(name)
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
            raise _bad_value(name, raw)
        return [RequestFields(v) for v in raw]


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON; a non-finite float left in ``payload`` is a bug, so it raises."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode("utf-8")


def encode_page_token(offset: int) -> str:
    """The token of the page starting at ``offset``."""
    return base64.b64encode(json.dumps({"offset": offset}).encode("ascii")).decode("ascii")


def decode_page_token(token: str | None) -> int:
    """The offset a page token stands for (0 for none)."""
    if not token:
        return 0
    try:
        parsed = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        raise MlflowError.invalid(f"Invalid page token {token!r}") from None
    offset = parsed.get("offset") if isinstance(parsed, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise MlflowError.invalid(f"Invalid page token {token!r}")
    return offset
