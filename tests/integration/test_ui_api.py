"""Every ``/api/ui/`` endpoint through Starlette's TestClient, on chDB and on the real ClickHouse server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from store.errors import StoreError
from runstream.server.ui_api import UiSettings, ui_routes
from ui_data import EXP, HOSTILE, NOW_MS, SPIKE_STEP, ui_store


def _app(reads: Any) -> Starlette:
    return Starlette(routes=ui_routes(lambda: contextlib.nullcontext(reads), UiSettings(refresh_s=2.0),
                                      clock=lambda: NOW_MS / 1000))


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = request.getfixturevalue("clickhouse_url") if request.param == "clickhouse" else None
    with ui_store(request.param, tmp_path_factory.mktemp("ui-api"), url) as reads:
        with TestClient(_app(reads)) as c:
            yield c


def get(client: TestClient, path: str, status: int = 200, **params: Any) -> Any:
    response = client.get(f"/api/ui/{path}", params=params)
    assert response.status_code == status, response.text
    return response.json() if response.headers["content-type"].startswith("application/json") else response


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "ui/assets/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/ui/assets/app.js").status_code == 200
    assert client.get("/ui/assets/app.css").status_code == 200


def test_config(client: TestClient) -> None:
    assert get(client, "config") == {"refresh_s": 2.0, "max_width": 4000, "max_runs": 500, "now_ms": NOW_MS}


def test_experiments(client: TestClient) -> None:
    e = get(client, "experiments")["experiments"]
    i = e["name"].index(EXP)
    assert e["runs"][i] == 8 and e["status"]["Failed"][i] == 2 and e["status"]["Running"][i] == 1


def test_runs(client: TestClient) -> None:
    body = get(client, "runs", experiment=EXP, metric=["acc", "mixed"])
    runs = body["runs"]
    i = runs["run_id"].index("r1")
    assert set(runs) >= {"run_id", "display_name", "status", "start_ms", "end_ms", "error"}
    assert body["metrics"]["acc"]["min"][i] == pytest.approx(0.5) and body["tags"]["team"][i] is None
    assert "acc" in body["metric_names"]["name"]
    auto = get(client, "runs", experiment=EXP, default_metrics=2)
    assert list(auto["metrics"]) == [n for n, k in zip(auto["metric_names"]["name"], auto["metric_names"]["kind"])
                                     if k == "scalar"][:2]
    assert body["sweep"] is None
    children = get(client, "runs", parent="hd")
    assert sorted(children["runs"]["run_id"]) == ["r1", "r2"]
    assert children["sweep"] is None            # a parent, but not a HyperDrive sweep's run (test_sweeps.py)
    get(client, "runs", 400)
    get(client, "runs", 400, experiment=EXP, metric=[f"m{i}" for i in range(21)])
    get(client, "runs", 400, experiment=EXP, default_metrics="three")


def test_run(client: TestClient) -> None:
    body = get(client, "run", run="odd")
    assert body["run"]["tags"] == {"baseline": "", "team": "vision"} and body["run"]["status"] == "Running"
    m = body["metrics"]
    assert m["chart"][m["name"].index("single")] == "value" and m["last"][m["name"].index("single")] == 0.93
    assert m["columns"][m["name"].index("lr_schedule")] == ["epoch", "lr"]
    assert get(client, "run", 404, run="nope")["error"]
    get(client, "run", 400)


def test_curves_are_columnar_and_bounded(client: TestClient) -> None:
    body = get(client, "curves", run="big", name="loss", width=400)
    assert body["mode"] == "minmax" and body["series"] == ["big"] and len(body["ys"]) == 1
    assert len(body["xs"]) == len(body["ys"][0]) <= 800
    assert max(v for v in body["ys"][0] if v is not None) == 100.0
    zoom = get(client, "curves", run="big", name="loss", width=400, x_min=SPIKE_STEP - 10, x_max=SPIKE_STEP + 10)
    assert zoom["mode"] == "raw" and zoom["xs"][10] == SPIKE_STEP and zoom["ys"][0][10] == 100.0
    overlay = get(client, "curves", run=["r1", "r2"], name="acc", x="relative", width=2000)
    assert overlay["series"] == ["r1", "r2"] and overlay["x"] == "relative" and overlay["points"] == [1000, 400]
    assert get(client, "curves", run="odd", name=HOSTILE)["ys"] == [[1.0, 2.0, 3.0]]
    get(client, "curves", 400, run="big", name="loss", x="epoch")
    get(client, "curves", 400, run="big", name="loss", width="wide")
    get(client, "curves", 400, run="big", name="loss", x_min="nan")
    get(client, "curves", 400, name="loss")
    get(client, "curves", 400, run="big")


def test_list_and_column_curves(client: TestClient) -> None:
    assert get(client, "list-curve", run="odd", name="norms")["ys"] == [[0.9, 1.1, 1.3, 1.2, 0.8]]
    c = get(client, "column-curve", run="odd", name="lr_schedule", x_column="epoch", y_column="lr")
    assert c["x"] == "epoch" and c["xs"] == list(range(20))
    get(client, "column-curve", 400, run="odd", name="lr_schedule", x_column="epoch")


def test_table_images_files(client: TestClient) -> None:
    t = get(client, "table", run="odd", name="confusion")
    assert t["columns"] == ["label", "correct"] and t["cells"]["label"] == ["cat", "dog"] and not t["truncated"]
    im = get(client, "images", run=["odd", "r1"], name="samples")
    assert im["index"] == [0, 1, 2] and im["run_id"] == ["odd"] * 3
    get(client, "images", 400)
    f = get(client, "files", run="odd")
    assert "outputs/model.txt" in f["path"]


def test_file_bytes_inline_only_for_images(client: TestClient) -> None:
    image = client.get("/api/ui/file", params={"run": "odd", "path": "images/samples/1.png"})
    assert image.status_code == 200 and image.content == bytes([1]) * 3
    assert image.headers["content-type"] == "image/png" and "content-disposition" not in image.headers
    text = client.get("/api/ui/file", params={"run": "odd", "path": "outputs/model.txt"})
    assert text.content == b"new weights, longer" and text.headers["content-type"] == "application/octet-stream"
    assert text.headers["content-disposition"] == "attachment; filename*=UTF-8''model.txt"
    forced = client.get("/api/ui/file", params={"run": "odd", "path": "images/samples/1.png", "download": "1"})
    assert forced.headers["content-disposition"].startswith("attachment")
    assert client.get("/api/ui/file", params={"run": "odd", "path": "../etc/passwd"}).status_code == 404


def test_logs(client: TestClient) -> None:
    tail = get(client, "logs", run="odd")
    assert tail["truncated"] and len(tail["message"]) == 5000 and len(tail["key"]) == 5000
    since = get(client, "logs", run="odd", since_ms=tail["time_ms"][-1])
    assert since["message"] == [tail["message"][-1]]


class _Down:
    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        raise StoreError("connection refused")


def test_store_failures_answer_503() -> None:
    with TestClient(_app(_Down())) as c:
        response = c.get("/api/ui/experiments")
    assert response.status_code == 503 and "connection refused" in json.loads(response.text)["error"]
