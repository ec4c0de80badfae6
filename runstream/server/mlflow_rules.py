"""MLflow's rules for what a run may be sent, checked before anything is stored.

Limits and messages follow MLflow's own server (``mlflow/utils/validation.py``)
so a client sees the errors it would see there: batch sizes, key and value
lengths, names, duplicate keys in one batch, and params that may not change.
runstream's per-run limits (metric names, tags, properties...) apply after
these, in the backend.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from typing import Mapping, Sequence

from .mlflow_backend import RUN_STATUSES
from .mlflow_wire import MlflowError

__all__ = [
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_ENTITIES_PER_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_EXPERIMENT_NAME_LENGTH",
    "check_key",
    "check_batch",
    "check_experiment_name",
    "check_run_id",
    "check_status",
    "new_params",
    "check_artifact_path",
]

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 1_000_000
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_EXPERIMENT_NAME_LENGTH = 500

_KEY_RE = re.compile(r"^[/\w.\- :]*$")
_RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")


def check_key(kind: str, key: str) -> None:
    """A metric, param or tag key: MLflow's characters, no path tricks, at most 250 characters."""
    if not key:
        raise MlflowError.invalid(f"Missing value for required parameter '{kind} key'.")
    if len(key) > MAX_KEY_LENGTH:
        raise MlflowError.invalid(
            f"{kind.capitalize()} key '{key[:40]}...' had length {len(key)}, which exceeded length limit of {MAX_KEY_LENGTH}"
        )
    if _KEY_RE.match(key) is None:
        raise MlflowError.invalid(
            f"Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise MlflowError.invalid(f"Invalid {kind} name: '{key}'. Names cannot be absolute paths or contain '..'.")


def _check_value(kind: str, key: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise MlflowError.invalid(
            f"{kind.capitalize()} value '{value[:40]}...' had length {len(value)}, which exceeded length limit of {limit}"
            f" ({kind} key {key!r})"
        )


def _check_unique(kind: str, keys: Sequence[str]) -> None:
    if len(set(keys)) != len(keys):
        dup = sorted(k for k, n in Counter(keys).items() if n > 1)
        raise MlflowError.invalid(
            f"Duplicate {kind} keys have been submitted: {dup}. Please ensure the request contains only one "
            f"{kind} value per {kind} key."
        )


def check_batch(metric_keys: Sequence[str], params: Sequence[tuple[str, str]],
                tags: Sequence[tuple[str, str]]) -> None:
    """A ``log-batch`` (and the single-item calls, which are batches of one); ``metric_keys``: one per point."""
    metrics = metric_keys
    if len(metrics) > MAX_METRICS_PER_BATCH:
        raise MlflowError.invalid(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. Got {len(metrics)} "
            "metrics. Please split up metrics across multiple requests and try again."
        )
    for kind, items in (("params", params), ("tags", tags)):
        if len(items) > MAX_PARAMS_TAGS_PER_BATCH:
            raise MlflowError.invalid(
                f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} {kind}. Got "
                f"{len(items)} {kind}. Please split up {kind} across multiple requests and try again."
            )
    total = len(metrics) + len(params) + len(tags)
    if total > MAX_ENTITIES_PER_BATCH:
        raise MlflowError.invalid(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params, and tags in "
            f"total. Got {total} in total. Please split up across multiple requests and try again."
        )
    for key in dict.fromkeys(metric_keys):  # each name once, in order (a batch repeats a few names)
        check_key("metric", key)
    for key, value in params:
        check_key("param", key)
        _check_value("param", key, value, MAX_PARAM_VALUE_LENGTH)
    for key, value in tags:
        check_key("tag", key)
        _check_value("tag", key, value, MAX_TAG_VALUE_LENGTH)
    _check_unique("param", [k for k, _ in params])


def check_experiment_name(name: str) -> None:
    """An experiment name: present and at most 500 characters."""
    if not name:
        raise MlflowError.invalid("Invalid experiment name: ''")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise MlflowError.invalid(
            f"Experiment name '{name[:40]}...' had length {len(name)}, which exceeded length limit of "
            f"{MAX_EXPERIMENT_NAME_LENGTH}"
        )


def check_run_id(run_id: str) -> None:
    """A run id MLflow accepts."""
    if _RUN_ID_RE.match(run_id) is None:
        raise MlflowError.invalid(f"Invalid value {run_id!r} for parameter 'run_id' supplied.")


def check_status(status: str) -> None:
    """One of MLflow's run statuses."""
    if status not in RUN_STATUSES:
        raise MlflowError.invalid(f"Invalid run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")


def new_params(run_id: str, current: Mapping[str, str], incoming: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The params of ``incoming`` not yet logged; a changed value is refused as MLflow does."""
    fresh: dict[str, str] = {}
    for key, value in incoming:
        old = current.get(key)
        if old is None:
            fresh[key] = value
        elif old != value:
            raise MlflowError.invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{old}' for run ID='{run_id}'. Attempted logging new value '{value}'."
            )
    return fresh


def check_artifact_path(path: str) -> str:
    """A relative ``/``-separated artifact path, normalised; absolute paths and ``..`` are refused.

    ``=``, ``+`` and ``~`` are ordinary characters here (Lightning's checkpoint
    folders, ``log_image`` file names).
    """
    if "\\" in path or "\x00" in path:
        raise MlflowError.invalid(f"Invalid artifact path: {path!r}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise MlflowError.invalid(f"Invalid artifact path: {path!r} is absolute")
    parts = path.split("/")
    if ".." in parts:
        raise MlflowError.invalid(f"Invalid artifact path: {path!r} contains '..'")
    normal = posixpath.normpath(path) if path else ""
    return "" if normal == "." else normal
