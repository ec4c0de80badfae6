"""The web UI: its JSON API under ``/api/ui/`` and its built pages, as Starlette routes.

:func:`ui_routes` returns the routes for an app's route list::

    app = Starlette(routes=[*mlflow_routes(...), *ui_routes(connect)])

``connect()`` opens the store's read queries for one request (a context
manager yielding an object with ``fetch(name, params)``: on a ClickHouse
server, on a chDB this process holds, or on an embedded home's owner over its
query socket); the UI's queries are :data:`store.ui_queries.UI_QUERIES`.
Every store call blocks, so handlers run in the thread pool
(``run_in_threadpool``). Answers are columnar JSON (one list per column, never
a list of point objects); user values (run ids, metric and file names) reach
the store as query parameters, never as SQL. The README's "The UI's JSON API" documents each
endpoint. The pages are static files built from ``ui/`` (``make ui``) and
served from ``static/`` beside this module: ``/`` is the app, ``/ui/assets/``
its scripts and styles; nothing is loaded from anywhere else.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from producers.hyperdrive.stored import HYPERPARAMETERS, sweep_view
from schemas.errors import PipelineError
from store import curves, run_table, run_view
from store._sqlparts import Reads
from store.errors import FileNotFound, RunNotFound

__all__ = ["STATIC_DIR", "UiSettings", "Connect", "ui_routes"]

Connect = Callable[[], AbstractContextManager[Reads]]
"""Opens the store's read queries for one request."""

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The built UI (``make ui`` writes it; the wheel ships it)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class UiSettings:
    """How the UI reads runs."""

    lost_after_s: float = 300.0
    """A "Running" run silent this long reads "Failed" (process lost), as in the SDK."""
    refresh_s: float = 3.0
    """How often the pages poll running runs (told to the page in ``/api/ui/config``)."""

    def __post_init__(self) -> None:
        if not self.lost_after_s > 0 or not self.refresh_s > 0:
            raise ValueError("lost_after_s and refresh_s must be > 0")


class _BadRequest(ValueError):
    pass


def _one(request: Request, name: str, *, required: bool = True) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _BadRequest(f"give {name!r} once")
    if not values or values[0] == "":
        if required:
            raise _BadRequest(f"missing query parameter {name!r}")
        return None
    return values[0]


def _text(request: Request, name: str) -> str:
    value = _one(request, name)
    assert value is not None
    return value


def _int(request: Request, name: str, default: int) -> int:
    value = _one(request, name, required=False)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, got {value!r}") from None


def _float(request: Request, name: str) -> float | None:
    value = _one(request, name, required=False)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise _BadRequest(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _BadRequest(f"{name} must be finite")
    return number


def _many(request: Request, name: str) -> list[str]:
    return [v for v in request.query_params.getlist(name) if v]


def _curves_response(c: curves.Curves, x: str) -> Response:
    """A curve answer, built by hand: the store hands over each series' y values as JSON text already
    (a hundred-run overlay holds ~10^5 numbers), so they are joined, never parsed and re-encoded."""
    head = json.dumps({"x": x, "mode": c.mode, "bucket": c.bucket, "x_min": c.x_min, "x_max": c.x_max,
                       "series": list(c.series), "points": [c.points[k] for k in c.series]}, allow_nan=False,
                      separators=(",", ":"))
    body = (head[:-1] + ',"xs":' + json.dumps(c.xs, allow_nan=False, separators=(",", ":"))
            + ',"ys":[' + ",".join(c.ys_json) + "]}")
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


Handler = Callable[[Request, Reads], Any]


def ui_routes(connect: Connect, settings: UiSettings | None = None, *, clock: Callable[[], float] = time.time,
              static_dir: Path | None = None) -> list[BaseRoute]:
    """The UI's routes: ``/`` (the page), ``/ui/assets`` (its files) and ``/api/ui/*`` over ``connect()``.

    ``clock`` (epoch seconds) decides which silent runs read "process lost".
    """
    s = settings or UiSettings()
    static = static_dir or STATIC_DIR

    def now_ms() -> float:
        return clock() * 1000

    def api(fn: Handler) -> Callable[[Request], Any]:
        """A JSON endpoint: ``fn`` runs in the thread pool with the store's reads; errors become 400/404/503."""

        def call(request: Request) -> Any:
            with connect() as reads:
                return fn(request, reads)

        async def endpoint(request: Request) -> Response:
            try:
                result = await run_in_threadpool(call, request)
            except (_BadRequest, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except (RunNotFound, FileNotFound) as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except PipelineError as exc:
                return JSONResponse({"error": f"the store did not answer: {exc}"}, status_code=503)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, headers={"Cache-Control": "no-store"})

        return endpoint

    async def config(_request: Request) -> Response:
        return JSONResponse({"refresh_s": s.refresh_s, "max_width": curves.MAX_WIDTH, "max_runs": curves.MAX_RUNS,
                             "now_ms": now_ms()}, headers={"Cache-Control": "no-store"})

    def experiments(_request: Request, reads: Reads) -> dict[str, Any]:
        e = run_table.experiments(reads, now_ms=now_ms(), lost_after_s=s.lost_after_s)
        return {"now_ms": now_ms(), "experiments": dataclasses.asdict(e)}

    def sweep_of(reads: Reads, parent: str, table: run_table.RunTable) -> dict[str, Any] | None:
        # A HyperDrive parent's objective and its children's sampled values: the sweep view's defaults and axes.
        try:
            details = run_view.run_details(reads, parent, now_ms=now_ms(), lost_after_s=s.lost_after_s)
        except RunNotFound:
            return None
        sampled = table.properties.get(HYPERPARAMETERS, [None] * len(table.run_id))
        view = sweep_view(details.kind, details.properties, sampled)
        return None if view is None else dataclasses.asdict(view)

    def runs(request: Request, reads: Reads) -> dict[str, Any]:
        parent = _one(request, "parent", required=False)
        t = run_table.run_table(reads, _one(request, "experiment", required=False), metrics=_many(request, "metric"),
                                parent=parent, default_metrics=_int(request, "default_metrics", 0), now_ms=now_ms(),
                                lost_after_s=s.lost_after_s)
        names = t.metric_names
        return {
            "now_ms": now_ms(), "experiment": t.experiment,
            "sweep": None if parent is None else sweep_of(reads, parent, t),
            "runs": {k: getattr(t, k) for k in ("run_id", "display_name", "parent_run_id", "kind", "status", "error",
                                               "start_ms", "end_ms", "last_activity_ms")},
            "tags": t.tags, "properties": t.properties,
            "metrics": {m: dataclasses.asdict(c) for m, c in t.metrics.items()},
            "metric_names": {"name": [n[0] for n in names], "kind": [n[1] for n in names],
                             "runs": [n[2] for n in names]},
        }

    def run(request: Request, reads: Reads) -> dict[str, Any]:
        run_id = _text(request, "run")
        details = run_view.run_details(reads, run_id, now_ms=now_ms(), lost_after_s=s.lost_after_s)
        metrics = run_view.run_metrics(reads, run_id, details.experiment)
        fields = [f.name for f in dataclasses.fields(run_view.MetricInfo)]
        return {
            "now_ms": now_ms(), "run": dataclasses.asdict(details),
            "metrics": {f: [getattr(m, f) for m in metrics] for f in fields},
        }

    def scalar_curves(request: Request, reads: Reads) -> Response:
        x = _one(request, "x", required=False) or "step"
        c = curves.scalar_curves(reads, _many(request, "run"), _text(request, "name"), x=x,
                                 width=_int(request, "width", 1000), x_min=_float(request, "x_min"),
                                 x_max=_float(request, "x_max"))
        return _curves_response(c, x)

    def list_curve(request: Request, reads: Reads) -> Response:
        c = curves.list_curve(reads, _text(request, "run"), _text(request, "name"),
                              width=_int(request, "width", 1000), x_min=_float(request, "x_min"),
                              x_max=_float(request, "x_max"))
        return _curves_response(c, "index")

    def column_curve(request: Request, reads: Reads) -> Response:
        x_column = _text(request, "x_column")
        c = curves.column_curve(reads, _text(request, "run"), _text(request, "name"), x_column,
                                _text(request, "y_column"), width=_int(request, "width", 1000),
                                x_min=_float(request, "x_min"), x_max=_float(request, "x_max"))
        return _curves_response(c, x_column)

    def table(request: Request, reads: Reads) -> dict[str, Any]:
        return dataclasses.asdict(run_view.table_rows(reads, _text(request, "run"), _text(request, "name")))

    def images(request: Request, reads: Reads) -> dict[str, Any]:
        runs = _many(request, "run")
        if not runs or len(runs) > curves.MAX_RUNS:
            raise _BadRequest(f"ask for 1 to {curves.MAX_RUNS} runs")
        return dataclasses.asdict(run_view.images(reads, runs, _one(request, "name", required=False)))

    def files(request: Request, reads: Reads) -> dict[str, Any]:
        return dataclasses.asdict(run_view.files(reads, _text(request, "run")))

    def file(request: Request, reads: Reads) -> Response:
        path = _text(request, "path")
        data, content_type = run_view.read_file(reads, _text(request, "run"), path)
        headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; sandbox"}
        safe_inline = content_type in ("image/png", "image/jpeg")
        if _one(request, "download", required=False) or not safe_inline:
            # Uploaded bytes are never rendered as a page of this origin: anything but an image downloads.
            name = path.rsplit("/", 1)[-1] or "file"
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
            content_type = content_type if safe_inline else "application/octet-stream"
        return Response(data, media_type=content_type, headers=headers)

    def logs(request: Request, reads: Reads) -> dict[str, Any]:
        since = _one(request, "since_ms", required=False)
        return dataclasses.asdict(run_view.logs(reads, _text(request, "run"),
                                                since_ms=None if since is None else _int(request, "since_ms", 0)))

    async def index(_request: Request) -> Response:
        page = static / "index.html"
        if not page.is_file():
            return Response("runstream: the UI is not built (run `make ui`)", status_code=503,
                            media_type="text/plain")
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    endpoints: Mapping[str, Handler] = {
        "experiments": experiments, "runs": runs, "run": run, "curves": scalar_curves,
        "list-curve": list_curve, "column-curve": column_curve, "table": table, "images": images, "files": files,
        "file": file, "logs": logs,
    }
    return [
        Route("/", index, methods=["GET"]),
        Route("/api/ui/config", config, methods=["GET"]),
        *(Route(f"/api/ui/{path}", api(fn), methods=["GET"]) for path, fn in endpoints.items()),
        Mount("/ui/assets", StaticFiles(directory=static / "assets", check_dir=False), name="ui-assets"),
    ]
