"""The server's Starlette app: one list of routes, read top to bottom, and how it is served.

``GET /health`` answers ``OK`` once the backend has started (ingest owner
taken, migrations applied...) and 503 before. Blocking work never runs on the
event loop: handlers hand it to the thread pool. ``serve`` runs the app under
uvicorn, which on SIGTERM or Ctrl-C stops accepting connections, lets the
requests in flight finish (up to ``graceful_timeout_s``), then runs the
app's shutdown (the backend flushes what it was sent) and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator, Callable, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from .mlflow_api import MlflowApi
from .mlflow_backend import TrackingBackend

__all__ = ["create_app", "serve"]

_log = logging.getLogger("runstream.server")
_log.addHandler(logging.NullHandler())


def create_app(
    backend: TrackingBackend,
    *,
    ui_routes: Sequence[BaseRoute] = (),
    startup: Callable[[], None] | None = None,
    shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The app over ``backend``.

    ``ui_routes``: the web UI's JSON routes and its static ``Mount("/")``
    (``runstream.server.ui_api``, issue 14); they come last, so the static
    mount only sees what no API route took. ``startup``/``shutdown`` are
    blocking hooks run in the thread pool around serving (the real backend
    opens and closes the home there); ``/health`` says OK only after startup.
    """
    mlflow = MlflowApi(backend)
    ready = False

    async def health(request: Request) -> Response:
        if not ready:
            return PlainTextResponse("starting", status_code=503)
        return PlainTextResponse("OK")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal ready
        if startup is not None:
            await run_in_threadpool(startup)
        ready = True
        try:
            yield
        finally:
            ready = False
            if shutdown is not None:
                await run_in_threadpool(shutdown)

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/version", mlflow.version, methods=["GET"]),
        Route("/api/3.0/mlflow/server-info", mlflow.server_info, methods=["GET"]),
        Mount("/api/2.0/mlflow-artifacts", routes=mlflow.artifact_routes()),
        Mount("/api/2.0/mlflow", routes=mlflow.tracking_routes()),
        # The web UI (issue 14): its /api/ui/... JSON routes and Mount("/", static files).
        *ui_routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 5000, graceful_timeout_s: float = 10.0,
          log_level: str = "info") -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C, then shut down gracefully (uvicorn's signal handling)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_timeout_s),
        log_level=log_level,
        access_log=False,
    )
    uvicorn.Server(config).run()
