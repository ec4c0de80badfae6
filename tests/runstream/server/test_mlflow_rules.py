import pytest

from runstream.server.mlflow_rules import (
    check_artifact_path,
    check_batch,
    check_key,
    check_run_id,
    check_status,
    new_params,
)
from runstream.server.mlflow_wire import MlflowError


def _points(n):
    return ["m"] * n  # one metric key per point


def test_batch_limits_are_mlflows():
    check_batch(_points(1000), [], [])
    with pytest.raises(MlflowError, match="at most 1000 metrics. Got 1001"):
        check_batch(_points(1001), [], [])
    with pytest.raises(MlflowError, match="at most 100 params"):
        check_batch([], [(f"p{i}", "v") for i in range(101)], [])
    with pytest.raises(MlflowError, match="at most 100 tags"):
        check_batch([], [], [(f"t{i}", "v") for i in range(101)])
    with pytest.raises(MlflowError, match="1000 metrics, params, and tags in total"):
        check_batch(_points(950), [(f"p{i}", "v") for i in range(60)], [])


def test_duplicate_param_keys_in_one_batch_are_refused():
    with pytest.raises(MlflowError, match=r"Duplicate param keys have been submitted: \['z'\]"):
        check_batch([], [("z", "1"), ("z", "2")], [])


def test_value_lengths():
    check_batch([], [("p", "x" * 6000)], [("t", "y" * 8000)])
    with pytest.raises(MlflowError, match="exceeded length limit of 6000"):
        check_batch([], [("p", "x" * 6001)], [])
    with pytest.raises(MlflowError, match="exceeded length limit of 8000"):
        check_batch([], [], [("t", "y" * 8001)])


@pytest.mark.parametrize("key", ["loss", "val/acc", "a b", "x:y", "lr-0.1", "mlflow.runName"])
def test_keys_mlflow_accepts(key):
    check_key("metric", key)


@pytest.mark.parametrize("key", ["", "a" * 251, "a=b", "../x", "/abs", "a/../b", "a\nb"])
def test_keys_refused(key):
    with pytest.raises(MlflowError) as err:
        check_key("metric", key)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_params_keep_their_first_value():
    assert new_params("r", {"lr": "0.1"}, [("lr", "0.1"), ("bs", "32")]) == {"bs": "32"}
    with pytest.raises(MlflowError, match="Changing param values is not allowed. Param with key='lr'"):
        new_params("r", {"lr": "0.1"}, [("lr", "0.2")])


@pytest.mark.parametrize("path,normal", [
    ("a.txt", "a.txt"), ("dir/a=1+b~c.txt", "dir/a=1+b~c.txt"), ("epoch=1-step=10/ckpt", "epoch=1-step=10/ckpt"),
    ("a//b/./c", "a/b/c"), ("", ""),
])
def test_artifact_paths_kept_literally(path, normal):
    assert check_artifact_path(path) == normal


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "a/..", "C:/x", "a\\b", "a\x00b"])
def test_artifact_paths_refused(path):
    with pytest.raises(MlflowError):
        check_artifact_path(path)


def test_run_ids_and_statuses():
    check_run_id("mnist_1795869087_05a1f1bb")
    check_run_id("7a534516e6824c0c8bd9bc9a7a2971a5")
    for bad in ("", "-x", "a/b", "a b"):
        with pytest.raises(MlflowError):
            check_run_id(bad)
    check_status("KILLED")
    with pytest.raises(MlflowError):
        check_status("Completed")
