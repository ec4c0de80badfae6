"""MLflow's tracking and artifact REST API, as the mlflow 3.x client calls it.

Each handler is a plain function of the request's fields that returns the
answer's JSON object; :func:`_json_endpoint` turns it into a Starlette
endpoint that reads the request, runs the handler (and the backend's blocking
calls) in the thread pool, and writes MLflow's JSON or error body. Storage is
the :class:`~runstream.server.mlflow_backend.TrackingBackend` given at
construction; nothing here knows runstream's tables or events.

Routes (``/api/2.0/mlflow/...`` under ``tracking_routes``, artifacts under
``artifact_routes``) are listed in :meth:`MlflowApi.tracking_routes`;
``runstream.server.app`` mounts them.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tempfile
import time
from typing import Any, Awaitable, BinaryIO, Callable, Iterator, Mapping, Sequence, cast

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .mlflow_backend import (
    DEFAULT_EXPERIMENT_ID,
    NO_METRICS,
    Experiment,
    MetricColumns,
    MetricPoint,
    RunInfo,
    RunView,
    TrackingBackend,
)
from .mlflow_rules import (
    MAX_BATCH_BYTES,
    check_artifact_path,
    check_batch,
    check_experiment_name,
    check_key,
    check_run_id,
    check_status,
)
from .mlflow_search import search_experiments, search_runs
from .mlflow_wire import (
    MlflowError,
    RequestFields,
    decode_page_token,
    dumps,
    encode_page_token,
    float_to_wire,
    metric_columns,
)

__all__ = ["MlflowApi", "MLFLOW_COMPATIBLE_VERSION", "HISTORY_PAGE_SIZE", "artifact_uri"]

_log = logging.getLogger("runstream.server.mlflow")
_log.addHandler(logging.NullHandler())

MLFLOW_COMPATIBLE_VERSION = "3.17.2"
"""The MLflow client version this API is tested against; ``GET /version`` answers it."""

HISTORY_PAGE_SIZE = 25_000
"""Points per ``metrics/get-history`` page (MLflow's own page size)."""

_MAX_JSON_BODY = 16 * 1024 * 1024
_UPLOAD_SPOOL_BYTES = 8 * 1024 * 1024

Handler = Callable[[RequestFields], Mapping[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]


def artifact_uri(experiment_id: str, run_id: str) -> str:
    """Where a run's artifacts live, as MLflow's proxied artifact store names it."""
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


# -- JSON shapes --------------------------------------------------------------------------

def _experiment_json(exp: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp.experiment_id}",
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": exp.creation_time,
        "last_update_time": exp.last_update_time,
        "tags": [{"key": k, "value": v} for k, v in exp.tags.items()],
    }


def _info_json(info: RunInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "user_id": info.user_id,
        "status": info.status,
        "start_time": info.start_time,
        "artifact_uri": artifact_uri(info.experiment_id, info.run_id),
        "lifecycle_stage": info.lifecycle_stage,
    }
    if info.end_time is not None:
        out["end_time"] = info.end_time
    return out


def _metric_json(m: MetricPoint) -> dict[str, Any]:
    return {"key": m.key, "value": float_to_wire(m.value), "timestamp": m.timestamp, "step": m.step}


def _run_json(run: RunView) -> dict[str, Any]:
    return {
        "info": _info_json(run.info),
        "data": {
            "metrics": [_metric_json(m) for m in run.metrics],
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
        },
        "inputs": {},
    }


def _with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:  # omitted on the last page: an empty string would read as "more"
        payload["next_page_token"] = token
    return payload


# -- request plumbing ---------------------------------------------------------------------

async def _request_fields(request: Request, max_bytes: int) -> RequestFields | bytes:
    """A GET's query fields, or a POST's body still as bytes (parsed in the thread pool, with the handler)."""
    if request.method == "GET":
        query = request.query_params
        return RequestFields({k: (vs[0] if len(vs) == 1 else vs)
                              for k in query.keys() for vs in [query.getlist(k)]})
    body = await request.body()
    if len(body) > max_bytes:
        raise MlflowError.invalid(
            f"Batched logging API requests must be at most {max_bytes // 1_000_000} MB in size. "
            f"Got a request of {len(body)} bytes."
        )
    return body


def _parse_body(body: bytes) -> RequestFields:
    if not body.strip():
        return RequestFields({})
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MlflowError("MALFORMED_REQUEST", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MlflowError("MALFORMED_REQUEST", "The request body must be a JSON object")
    return RequestFields(data)


def _answer(handler: Handler, fields: RequestFields | bytes) -> bytes:
    # One trip to the thread pool per request: a 1 MB body takes milliseconds to parse, off the event loop.
    return dumps(handler(fields if isinstance(fields, RequestFields) else _parse_body(fields)))


def _error_response(err: MlflowError) -> Response:
    return Response(dumps(err.body()), status_code=err.http_status, media_type="application/json")


def _internal_error(request: Request, exc: BaseException) -> Response:
    _log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error_response(MlflowError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"))


def _json_endpoint(handler: Handler, *, max_bytes: int = _MAX_JSON_BODY) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            fields = await _request_fields(request, max_bytes)
            body = await run_in_threadpool(_answer, handler, fields)
        except MlflowError as err:
            return _error_response(err)
        except Exception as exc:  # answered as MLflow's INTERNAL_ERROR (the client retries it)
            return _internal_error(request, exc)
        return Response(body, media_type="application/json")

    return endpoint


def _split_artifact_path(full: str) -> tuple[str, str, str]:
    """``<experiment>/<run>/artifacts[/<path>]`` -> (experiment id, run id, checked relative path)."""
    parts = full.strip("/").split("/", 3) if full.strip("/") else []
    if len(parts) < 3 or parts[2] != "artifacts" or not parts[0]:
        raise MlflowError.invalid(
            f"Invalid artifact path {full!r}: expected <experiment_id>/<run_id>/artifacts/<path>"
        )
    check_run_id(parts[1])
    rest = parts[3] if len(parts) == 4 else ""
    return parts[0], parts[1], check_artifact_path(rest)


class MlflowApi:
    """The MLflow endpoints over one backend. ``clock`` returns epoch seconds (run start times)."""

    def __init__(self, backend: TrackingBackend, *, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock

    # -- routes ------------------------------------------------------------------------
    def tracking_routes(self) -> list[BaseRoute]:
        """Everything under ``/api/2.0/mlflow``."""
        get, post = ["GET"], ["POST"]
        j = _json_endpoint
        return [
            Route("/experiments/get-by-name", j(self.get_experiment_by_name), methods=get),
            Route("/experiments/get", j(self.get_experiment), methods=get),
            Route("/experiments/create", j(self.create_experiment), methods=post),
            Route("/experiments/search", j(self.search_experiments), methods=["POST", "GET"]),
            Route("/runs/create", j(self.create_run), methods=post),
            Route("/runs/get", j(self.get_run), methods=get),
            Route("/runs/update", j(self.update_run), methods=post),
            Route("/runs/search", j(self.search_runs), methods=["POST", "GET"]),
            Route("/runs/log-metric", j(self.log_metric), methods=post),
            Route("/runs/log-parameter", j(self.log_parameter), methods=post),
            Route("/runs/set-tag", j(self.set_tag), methods=post),
            Route("/runs/delete-tag", j(self.delete_tag), methods=post),
            Route("/runs/log-batch", j(self.log_batch, max_bytes=MAX_BATCH_BYTES), methods=post),
            Route("/runs/log-inputs", j(self.log_inputs), methods=post),
            Route("/metrics/get-history", j(self.get_metric_history), methods=get),
            Route("/logged-models/search", j(self.search_logged_models), methods=post),
            Route("/{rest:path}", self.unknown_endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def artifact_routes(self) -> list[BaseRoute]:
        """Everything under ``/api/2.0/mlflow-artifacts``."""
        return [
            Route("/artifacts", _json_endpoint(self.list_artifacts), methods=["GET"]),
            Route("/artifacts/{path:path}", self.download_artifact, methods=["GET"]),
            Route("/artifacts/{path:path}", self.upload_artifact, methods=["PUT"]),
        ]

    async def server_info(self, request: Request) -> Response:
        """``/api/3.0/mlflow/server-info``: no workspaces, no multipart or presigned transfers."""
        return Response(dumps({
            "store_type": None,
            "workspaces_enabled": False,
            "trace_archival_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
        }), media_type="application/json")

    async def version(self, request: Request) -> Response:
        """``/version``: the MLflow version whose client this server is tested with."""
        return PlainTextResponse(MLFLOW_COMPATIBLE_VERSION)

    async def unknown_endpoint(self, request: Request) -> Response:
        """MLflow's answer to an endpoint it does not have (JSON, so the client reads the code)."""
        return _error_response(MlflowError(
            "ENDPOINT_NOT_FOUND", f"runstream does not serve {request.method} {request.url.path}"))

    # -- experiments -------------------------------------------------------------------
    def get_experiment_by_name(self, f: RequestFields) -> Mapping[str, Any]:
        name = f.text("experiment_name")
        exp = self._backend.get_experiment_by_name(name)
        if exp is None:
            raise MlflowError.not_found(f"Could not find experiment with name '{name}'")
        return {"experiment": _experiment_json(exp)}

    def get_experiment(self, f: RequestFields) -> Mapping[str, Any]:
        experiment_id = f.text("experiment_id")
        exp = self._backend.get_experiment(experiment_id)
        if exp is None:
            raise MlflowError.not_found(f"No Experiment with id={experiment_id} exists")
        return {"experiment": _experiment_json(exp)}

    def create_experiment(self, f: RequestFields) -> Mapping[str, Any]:
        name = f.text("name")
        check_experiment_name(name)
        tags = {t.text("key"): t.opt_text("value") or "" for t in f.objects("tags")}
        return {"experiment_id": self._backend.create_experiment(name, tags).experiment_id}

    def search_experiments(self, f: RequestFields) -> Mapping[str, Any]:
        page, token = search_experiments(
            self._backend.list_experiments(),
            filter_string=f.opt_text("filter"),
            order_by=f.texts("order_by"),
            max_results=f.opt_integer("max_results") or 1000,
            page_token=f.opt_text("page_token"),
        )
        return _with_token({"experiments": [_experiment_json(e) for e in page]}, token)

    # -- runs --------------------------------------------------------------------------
    def _run(self, run_id: str) -> RunView:
        run = self._backend.get_run(run_id)
        if run is None:
            raise MlflowError.not_found(f"Run with id={run_id} not found")
        return run

    def create_run(self, f: RequestFields) -> Mapping[str, Any]:
        tags = [(t.text("key"), t.opt_text("value") or "") for t in f.objects("tags")]
        check_batch((), [], tags)
        run = self._backend.create_run(
            experiment_id=f.opt_text("experiment_id") or DEFAULT_EXPERIMENT_ID,
            user_id=f.opt_text("user_id") or "",
            start_time=f.opt_integer("start_time") or int(self._clock() * 1000),
            run_name=f.opt_text("run_name") or None,
            tags=dict(tags),
        )
        return {"run": _run_json(run)}

    def get_run(self, f: RequestFields) -> Mapping[str, Any]:
        return {"run": _run_json(self._run(f.text("run_id", alias="run_uuid")))}

    def update_run(self, f: RequestFields) -> Mapping[str, Any]:
        run_id = f.text("run_id", alias="run_uuid")
        status = f.opt_text("status")
        if status is not None:
            check_status(status)
        info = self._backend.update_run(run_id, status=status, end_time=f.opt_integer("end_time"),
                                        run_name=f.opt_text("run_name") or None)
        return {"run_info": _info_json(info)}

    def search_runs(self, f: RequestFields) -> Mapping[str, Any]:
        runs = self._backend.list_runs(f.texts("experiment_ids"))
        page, token = search_runs(
            runs,
            filter_string=f.opt_text("filter"),
            order_by=f.texts("order_by"),
            max_results=f.opt_integer("max_results") or 1000,
            page_token=f.opt_text("page_token"),
            artifact_uri=lambda r: artifact_uri(r.info.experiment_id, r.info.run_id),
        )
        return _with_token({"runs": [_run_json(r) for r in page]}, token)

    def _log(self, run_id: str, metrics: MetricColumns, params: Sequence[tuple[str, str]],
             tags: Sequence[tuple[str, str]]) -> Mapping[str, Any]:
        check_batch(metrics.keys, params, tags)
        self._backend.log_batch(run_id, metrics=metrics, params=dict(params), tags=dict(tags))
        return {}

    @staticmethod
    def _metric(f: RequestFields) -> MetricColumns:
        return MetricColumns([f.text("key")], [f.number("value")], [f.integer("timestamp")],
                             [f.opt_integer("step") or 0])

    @staticmethod
    def _pair(f: RequestFields, kind: str) -> tuple[str, str]:
        key = f.text("key")
        value = f.opt_text("value")
        if value is None:
            if kind == "param":
                raise MlflowError.invalid(f"Missing value for required parameter 'value' (param {key!r}).")
            value = ""
        return key, value

    def log_metric(self, f: RequestFields) -> Mapping[str, Any]:
        return self._log(f.text("run_id", alias="run_uuid"), self._metric(f), [], [])

    def log_parameter(self, f: RequestFields) -> Mapping[str, Any]:
        return self._log(f.text("run_id", alias="run_uuid"), NO_METRICS, [self._pair(f, "param")], [])

    def set_tag(self, f: RequestFields) -> Mapping[str, Any]:
        return self._log(f.text("run_id", alias="run_uuid"), NO_METRICS, [], [self._pair(f, "tag")])

    def delete_tag(self, f: RequestFields) -> Mapping[str, Any]:
        key = f.text("key")
        check_key("tag", key)
        self._backend.delete_tag(f.text("run_id"), key)
        return {}

    def log_batch(self, f: RequestFields) -> Mapping[str, Any]:
        return self._log(
            f.text("run_id"),
            metric_columns(f.raw("metrics")),
            [self._pair(p, "param") for p in f.objects("params")],
            [self._pair(t, "tag") for t in f.objects("tags")],
        )

    def log_inputs(self, f: RequestFields) -> Mapping[str, Any]:
        self._run(f.text("run_id"))  # datasets are accepted and not kept (see DESIGN-mlflow.md)
        return {}

    def get_metric_history(self, f: RequestFields) -> Mapping[str, Any]:
        run_id = f.text("run_id", alias="run_uuid")
        key = f.text("metric_key")
        limit = min(f.opt_integer("max_results") or HISTORY_PAGE_SIZE, HISTORY_PAGE_SIZE)
        if limit < 1:
            raise MlflowError.invalid("max_results must be positive")
        offset = decode_page_token(f.opt_text("page_token"))
        self._run(run_id)
        cols = self._backend.metric_history(run_id, key, offset=offset, limit=limit + 1)
        n = min(len(cols.values), limit)
        metrics = [
            {"key": key, "value": float_to_wire(v), "timestamp": t, "step": s}
            for t, s, v in zip(cols.timestamps[:n], cols.steps[:n], cols.values[:n])
        ]
        return _with_token({"metrics": metrics}, encode_page_token(offset + n) if len(cols.values) > limit else None)

    def search_logged_models(self, f: RequestFields) -> Mapping[str, Any]:
        return {}  # runstream keeps no logged models; MLflow's client reads {} as none

    # -- artifacts ---------------------------------------------------------------------
    def list_artifacts(self, f: RequestFields) -> Mapping[str, Any]:
        raw = (f.opt_text("path") or "").strip("/")
        if raw.count("/") < 2:  # the root, an experiment or a run folder: nothing to list there
            return {"files": []}
        _, run_id, prefix = _split_artifact_path(raw)
        self._run(run_id)
        entries = self._backend.list_artifacts(run_id)
        exact = [e for e in entries if e.path == prefix]
        if exact and prefix:  # the path is a file: MLflow answers with that file alone
            return {"files": [{"path": prefix.rsplit("/", 1)[-1], "is_dir": False, "file_size": exact[0].size}]}
        base = f"{prefix}/" if prefix else ""
        files: dict[str, dict[str, Any]] = {}
        for entry in entries:
            if not entry.path.startswith(base):
                continue
            head, sep, _ = entry.path[len(base):].partition("/")
            if sep:
                files.setdefault(head, {"path": head, "is_dir": True})
            else:
                files[head] = {"path": head, "is_dir": False, "file_size": entry.size}
        return {"files": [files[k] for k in sorted(files)]}

    async def download_artifact(self, request: Request) -> Response:
        """GET one artifact's bytes, streamed from the backend."""
        try:
            _, run_id, path = _split_artifact_path(request.path_params["path"])
            if not path:
                raise MlflowError.invalid("An artifact path is required")
            chunks: Iterator[bytes] | None = await run_in_threadpool(self._open_artifact, run_id, path)
            if chunks is None:
                raise MlflowError.not_found(f"No such artifact: {request.path_params['path']!r}")
        except MlflowError as err:
            return _error_response(err)
        except Exception as exc:
            return _internal_error(request, exc)
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return StreamingResponse(iterate_in_threadpool(chunks), media_type=media_type)

    def _open_artifact(self, run_id: str, path: str) -> Iterator[bytes] | None:
        self._run(run_id)
        return self._backend.read_artifact(run_id, path)

    async def upload_artifact(self, request: Request) -> Response:
        """PUT one artifact: the raw body (chunked for empty files), spooled to disk past 8 MiB."""
        try:
            _, run_id, path = _split_artifact_path(request.path_params["path"])
            if not path:
                raise MlflowError.invalid("An artifact path is required")
            await run_in_threadpool(self._run, run_id)
            content_type = request.headers.get("content-type", "application/octet-stream")
            with tempfile.SpooledTemporaryFile(max_size=_UPLOAD_SPOOL_BYTES) as spool:
                size = 0
                async for chunk in request.stream():
                    if chunk:
                        size += len(chunk)
                        if spool.tell() + len(chunk) > _UPLOAD_SPOOL_BYTES:
                            await run_in_threadpool(spool.write, chunk)
                        else:
                            spool.write(chunk)
                spool.seek(0)
                await run_in_threadpool(self._backend.put_artifact, run_id, path, cast(BinaryIO, spool), size,
                                        content_type)
        except MlflowError as err:
            return _error_response(err)
        except Exception as exc:
            return _internal_error(request, exc)
        return Response(b"{}", media_type="application/json")
