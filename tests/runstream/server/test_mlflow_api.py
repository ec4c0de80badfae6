"""The MLflow endpoints over the in-memory backend, driven through the whole app (no socket)."""

import json

import pytest
from starlette.testclient import TestClient

from runstream.server.app import create_app
from runstream.server.mlflow_api import HISTORY_PAGE_SIZE
from runstream.server.testing import InMemoryTrackingBackend

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def backend():
    return InMemoryTrackingBackend(clock=lambda: 1_700_000_000.0)


@pytest.fixture
def client(backend):
    with TestClient(create_app(backend)) as c:
        yield c


def _ok(resp):
    assert resp.status_code == 200, resp.text
    return resp.json()


def _error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    return body["message"]


def _new_run(client, **body):
    return _ok(client.post(f"{API}/runs/create", json={"start_time": 5, **body}))["run"]


def test_experiment_get_by_name_create_get(client):
    msg = _error(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "e"}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert "'e'" in msg
    exp_id = _ok(client.post(f"{API}/experiments/create", json={"name": "e", "tags": [{"key": "k", "value": "v"}]}))[
        "experiment_id"]
    assert isinstance(exp_id, str)
    exp = _ok(client.get(f"{API}/experiments/get", params={"experiment_id": exp_id}))["experiment"]
    assert exp["name"] == "e" and exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert exp["tags"] == [{"key": "k", "value": "v"}]
    assert _ok(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "e"}))["experiment"] == exp
    _error(client.post(f"{API}/experiments/create", json={"name": "e"}), 400, "RESOURCE_ALREADY_EXISTS")
    _error(client.get(f"{API}/experiments/get", params={"experiment_id": "99"}), 404, "RESOURCE_DOES_NOT_EXIST")
    names = [e["name"] for e in _ok(client.post(f"{API}/experiments/search", json={"max_results": 10}))["experiments"]]
    assert sorted(names) == ["Default", "e"]


def test_default_experiment_zero_exists(client):
    assert _ok(client.get(f"{API}/experiments/get", params={"experiment_id": "0"}))["experiment"]["name"] == "Default"
    run = _new_run(client)
    assert run["info"]["experiment_id"] == "0"
    _error(client.post(f"{API}/runs/create", json={"experiment_id": "42"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_run_create_get_update(client):
    run = _new_run(client, user_id="me", run_name="first", tags=[{"key": "mlflow.user", "value": "me"}])
    info = run["info"]
    rid = info["run_id"]
    assert info["run_uuid"] == rid and info["status"] == "RUNNING" and "end_time" not in info
    assert info["artifact_uri"] == f"mlflow-artifacts:/0/{rid}/artifacts"
    assert {"key": "mlflow.runName", "value": "first"} in run["data"]["tags"]
    got = _ok(client.get(f"{API}/runs/get", params={"run_uuid": rid}))["run"]  # older field name alone
    assert got["info"] == info
    upd = _ok(client.post(f"{API}/runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": "9"}))
    assert upd["run_info"]["status"] == "FINISHED" and upd["run_info"]["end_time"] == 9
    # resuming a finished run (start_run(run_id=...)) sets it RUNNING again
    assert _ok(client.post(f"{API}/runs/update", json={"run_id": rid, "status": "RUNNING"}))["run_info"]["status"] == "RUNNING"
    _error(client.post(f"{API}/runs/update", json={"run_id": rid, "status": "Completed"}), 400, "INVALID_PARAMETER_VALUE")
    _error(client.get(f"{API}/runs/get", params={"run_id": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(client.get(f"{API}/runs/get"), 400, "INVALID_PARAMETER_VALUE")


def test_log_batch_round_trips_non_finite_values_and_is_idempotent(client):
    rid = _new_run(client)["info"]["run_id"]
    batch = {"run_id": rid, "metrics": [
        {"key": "loss", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "loss", "value": "Infinity", "timestamp": 2, "step": 1},
        {"key": "loss", "value": "-Infinity", "timestamp": "3", "step": "2"},
        {"key": "loss", "value": 0.5, "timestamp": 4},
    ], "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "v"}]}
    _ok(client.post(f"{API}/runs/log-batch", json=batch))
    _ok(client.post(f"{API}/runs/log-batch", json=batch))  # the client's retry after a 5xx
    hist = _ok(client.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "loss"}))
    assert [m["value"] for m in hist["metrics"]] == ["NaN", "Infinity", "-Infinity", 0.5]
    assert "next_page_token" not in hist
    run = _ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]
    assert run["data"]["metrics"] == [{"key": "loss", "value": "-Infinity", "timestamp": 3, "step": 2}]
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]


def test_single_item_calls(client):
    rid = _new_run(client)["info"]["run_id"]
    _ok(client.post(f"{API}/runs/log-metric", json={"run_uuid": rid, "run_id": rid, "key": "m", "value": 1.0,
                                                    "timestamp": 7, "step": 3}))
    _ok(client.post(f"{API}/runs/log-parameter", json={"run_id": rid, "key": "p", "value": "1"}))
    _ok(client.post(f"{API}/runs/log-parameter", json={"run_id": rid, "key": "p", "value": "1"}))
    msg = _error(client.post(f"{API}/runs/log-parameter", json={"run_id": rid, "key": "p", "value": "2"}),
                 400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values is not allowed" in msg
    _ok(client.post(f"{API}/runs/set-tag", json={"run_id": rid, "key": "t", "value": "a"}))
    _ok(client.post(f"{API}/runs/set-tag", json={"run_id": rid, "key": "t", "value": "b"}))
    _ok(client.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "t"}))
    _error(client.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "t"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(client.post(f"{API}/runs/log-metric", json={"run_id": rid, "key": "m", "value": "abc", "timestamp": 1}),
           400, "INVALID_PARAMETER_VALUE")
    _error(client.post(f"{API}/runs/log-metric", json={"run_id": "nope", "key": "m", "value": 1, "timestamp": 1}),
           404, "RESOURCE_DOES_NOT_EXIST")
    run = _ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]
    assert run["data"]["metrics"] == [{"key": "m", "value": 1.0, "timestamp": 7, "step": 3}]
    assert not any(t["key"] == "t" for t in run["data"]["tags"])


def test_finished_runs_accept_metrics_and_tags(client):
    rid = _new_run(client)["info"]["run_id"]
    _ok(client.post(f"{API}/runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": 9}))
    _ok(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "metrics": [
        {"key": "test_acc", "value": 0.9, "timestamp": 10, "step": 0}], "tags": [{"key": "after", "value": "1"}]}))
    run = _ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]
    assert run["info"]["status"] == "FINISHED" and run["data"]["metrics"][0]["key"] == "test_acc"


def test_batch_limits(client):
    rid = _new_run(client)["info"]["run_id"]
    many = [{"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(1001)]
    msg = _error(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "metrics": many}),
                 400, "INVALID_PARAMETER_VALUE")
    assert "at most 1000 metrics" in msg
    big = [{"key": f"p{i}", "value": "x" * 5000} for i in range(100)]  # 100 params, ~0.5 MB each way
    msg = _error(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "params": big, "tags": big}),
                 400, "INVALID_PARAMETER_VALUE")
    assert "at most 1 MB" in msg
    _error(client.post(f"{API}/runs/log-batch", content=b"{not json", headers={"content-type": "application/json"}),
           400, "MALFORMED_REQUEST")


def test_history_pages_of_25000(client, backend):
    rid = _new_run(client)["info"]["run_id"]
    for start in range(0, HISTORY_PAGE_SIZE + 1, 1000):
        _ok(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "metrics": [
            {"key": "h", "value": i, "timestamp": i, "step": i} for i in range(start, min(start + 1000, HISTORY_PAGE_SIZE + 1))]}))
    q = {"run_id": rid, "metric_key": "h", "max_results": HISTORY_PAGE_SIZE}
    first = _ok(client.get(f"{API}/metrics/get-history", params=q))
    assert len(first["metrics"]) == HISTORY_PAGE_SIZE and first["next_page_token"]
    last = _ok(client.get(f"{API}/metrics/get-history", params={**q, "page_token": first["next_page_token"]}))
    assert [m["step"] for m in last["metrics"]] == [HISTORY_PAGE_SIZE] and "next_page_token" not in last
    assert _ok(client.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "nope"})) == {"metrics": []}


def test_search_runs_with_filter_order_and_get_style_lists(client):
    ids = []
    for i, lr in enumerate(["0.1", "0.01", "0.001"]):
        rid = _new_run(client, start_time=i)["info"]["run_id"]
        ids.append(rid)
        _ok(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "params": [{"key": "lr", "value": lr}],
                                                       "metrics": [{"key": "loss", "value": i, "timestamp": 1, "step": 0}]}))
    body = {"experiment_ids": ["0"], "filter": "metrics.loss >= 1", "order_by": ["metrics.loss ASC"], "max_results": 1}
    page = _ok(client.post(f"{API}/runs/search", json=body))
    assert [r["info"]["run_id"] for r in page["runs"]] == [ids[1]]
    page2 = _ok(client.post(f"{API}/runs/search", json={**body, "page_token": page["next_page_token"]}))
    assert [r["info"]["run_id"] for r in page2["runs"]] == [ids[2]] and "next_page_token" not in page2
    _error(client.post(f"{API}/runs/search", json={"experiment_ids": ["0"], "filter": "metrics.loss >> 1"}),
           400, "INVALID_PARAMETER_VALUE")
    assert _ok(client.post(f"{API}/runs/search", json={"experiment_ids": ["7"]})) == {"runs": []}


def test_artifacts_put_get_list(client):
    rid = _new_run(client)["info"]["run_id"]
    root = f"{ART}/0/{rid}/artifacts"
    assert client.put(f"{root}/epoch=1-step=10/model+v1~final.ckpt", content=b"weights").status_code == 200
    assert client.put(f"{root}/empty.txt", content=b"").status_code == 200
    assert client.put(f"{root}/a/b/c.json", content=b"{}", headers={"content-type": "application/json"}).status_code == 200
    get = client.get(f"{root}/epoch=1-step=10/model+v1~final.ckpt")
    assert get.status_code == 200 and get.content == b"weights"
    assert client.get(f"{root}/empty.txt").content == b""
    listing = _ok(client.get(ART, params={"path": f"0/{rid}/artifacts"}))["files"]
    assert listing == [{"path": "a", "is_dir": True}, {"path": "empty.txt", "is_dir": False, "file_size": 0},
                       {"path": "epoch=1-step=10", "is_dir": True}]
    assert _ok(client.get(ART, params={"path": f"0/{rid}/artifacts/a/b"}))["files"] == [
        {"path": "c.json", "is_dir": False, "file_size": 2}]
    assert _ok(client.get(ART, params={"path": f"0/{rid}/artifacts/a/b/c.json"}))["files"] == [
        {"path": "c.json", "is_dir": False, "file_size": 2}]
    assert _ok(client.get(ART, params={"path": ""}))["files"] == []
    _error(client.get(f"{root}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(client.put(f"{ART}/0/nope/artifacts/x.txt", content=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("tail", ["%2E%2E/escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "%2Fabs.txt"])
def test_artifact_paths_that_escape_are_refused(client, tail):
    rid = _new_run(client)["info"]["run_id"]
    _error(client.put(f"{ART}/0/{rid}/artifacts/{tail}", content=b"x"), 400, "INVALID_PARAMETER_VALUE")
    _error(client.get(f"{ART}/0/{rid}/artifacts/{tail}"), 400, "INVALID_PARAMETER_VALUE")


def test_cheap_answers(client):
    rid = _new_run(client)["info"]["run_id"]
    assert _ok(client.post(f"{API}/runs/log-inputs", json={"run_id": rid, "datasets": []})) == {}
    assert _ok(client.post(f"{API}/logged-models/search", json={"experiment_ids": ["0"]})) == {}
    info = _ok(client.get("/api/3.0/mlflow/server-info"))
    assert info["multipart_uploads_enabled"] is False and info["workspaces_enabled"] is False
    assert client.get("/version").text.startswith("3.")
    _error(client.post(f"{API}/registered-models/create", json={"name": "m"}), 404, "ENDPOINT_NOT_FOUND")
    _error(client.get(f"{API}/runs/create"), 404, "ENDPOINT_NOT_FOUND")  # wrong method: still MLflow's JSON


def test_backend_failures_are_mlflow_internal_errors(backend):
    class Broken(InMemoryTrackingBackend):
        def get_run(self, run_id):
            raise RuntimeError("store down")

    with TestClient(create_app(Broken())) as c:
        msg = _error(c.get(f"{API}/runs/get", params={"run_id": "r"}), 500, "INTERNAL_ERROR")
    assert "store down" in msg
    assert json.loads(json.dumps(msg))  # plain text, no traceback object
