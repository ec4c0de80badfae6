import threading

from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from runstream.server.app import create_app
from runstream.server.testing import InMemoryTrackingBackend


def test_health_is_ok_only_between_startup_and_shutdown():
    calls = []
    started = threading.Event()

    def startup():
        calls.append("startup")
        started.set()

    app = create_app(InMemoryTrackingBackend(), startup=startup, shutdown=lambda: calls.append("shutdown"))
    with TestClient(app) as client:
        assert started.is_set()
        resp = client.get("/health")
        assert (resp.status_code, resp.text) == (200, "OK")
    assert calls == ["startup", "shutdown"]


def test_ui_routes_come_after_the_api():
    async def page(request):
        return PlainTextResponse("ui")

    ui = [Route("/api/ui/runs", page), Mount("/", routes=[Route("/{path:path}", page)])]
    with TestClient(create_app(InMemoryTrackingBackend(), ui_routes=ui)) as client:
        assert client.get("/api/ui/runs").text == "ui"
        assert client.get("/index.html").text == "ui"
        assert client.get("/health").text == "OK"
        assert client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}).json()[
            "experiment"]["name"] == "Default"
