"""The server's Starlette app: one list of routes, read top to bottom, and how it is served.

``GET /health`` answers ``OK`` once the server has started (its home taken,
the store open) and 503 before. Blocking work never runs on the event loop:
handlers hand it to the thread pool. :func:`serve` runs the app under uvicorn,
which on SIGTERM or Ctrl-C stops accepting connections, lets the requests in
flight finish (up to ``graceful_timeout_s``), then runs the app's shutdown and
exits 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["create_app", "serve"]


def create_app(*, ui_routes: Sequence[BaseRoute] = (), startup: Callable[[], None] | None = None,
               shutdown: Callable[[], None] | None = None) -> Starlette:
    """The app: ``/health``, then the web UI's routes (its pages and ``/api/ui/``, :mod:`.ui_api`).

    ``startup``/``shutdown`` are blocking hooks run in the thread pool around serving
    (the server takes and lets go of its home there); ``/health`` says OK only in between.
    """
    ready = False

    async def health(request: Request) -> Response:
        return PlainTextResponse("OK") if ready else PlainTextResponse("starting", status_code=503)

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
        # The web UI (issue 14): "/", /ui/assets/... and /api/ui/...
        *ui_routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 5000, graceful_timeout_s: float = 10.0,
          log_level: str = "warning") -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C, then shut down gracefully (uvicorn's signal handling)."""
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", timeout_graceful_shutdown=int(graceful_timeout_s),
                            log_level=log_level, access_log=False)
    uvicorn.Server(config).run()
