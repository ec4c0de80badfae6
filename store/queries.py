"""The read queries, by name: fixed SQL text in which every user value is a ``{name:Type}`` parameter.

Readers never send SQL text anywhere: they ask for a query by name
(:class:`ReadQueries`). In-process the name is looked up here and run on a
store (:class:`StoreQueries`); across processes it travels over the home's
query socket (:mod:`store.query_socket`), whose server runs only the names in
:data:`READ_QUERIES`. So the catalogue below is everything another process can
ask of an embedded home.

Every query deduplicates — ``LIMIT 1 BY`` the message identity
(``writer_id, seq[, idx]``) or an aggregate that a duplicate cannot change —
because a re-delivered message stays in the table until ClickHouse merges it
away.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from .base import QueryRunner
from .errors import StoreError
from .ui_queries import UI_QUERIES

__all__ = ["READ_QUERIES", "ReadQueries", "StoreQueries"]

_SDK_QUERIES: Mapping[str, str] = MappingProxyType({
    "run": (
        "SELECT run_id, experiment, any(parent_run_id), any(display_name), any(kind), any(host), any(pid), "
        "min(start_ms) FROM {db}.runs WHERE run_id = {run:String} GROUP BY run_id, experiment"
    ),
    "runs_of_experiment": (
        "SELECT run_id, experiment, any(parent_run_id), any(display_name), any(kind), any(host), any(pid), "
        "min(start_ms) AS s FROM {db}.runs WHERE experiment = {experiment:String} GROUP BY run_id, experiment "
        "ORDER BY s DESC, run_id DESC"
    ),
    "statuses_of_experiment": (
        "SELECT run_id, status, error_details, created_ms FROM {db}.run_status "
        "WHERE experiment = {experiment:String} ORDER BY run_id, created_ms DESC, seq DESC LIMIT 1 BY run_id"
    ),
    "heartbeats_of_experiment": (
        "SELECT run_id, max(created_ms), max(interval_ms) FROM {db}.run_heartbeats "
        "WHERE experiment = {experiment:String} GROUP BY run_id"
    ),
    "status": (
        "SELECT status, error_details, created_ms FROM {db}.run_status WHERE run_id = {run:String} "
        "ORDER BY created_ms DESC, seq DESC LIMIT 1"
    ),
    "final_status_event": (
        "SELECT writer_id, seq FROM {db}.run_status WHERE run_id = {run:String} AND status != 'Running' "
        "ORDER BY created_ms DESC, seq DESC LIMIT 1"
    ),
    "heartbeat": (
        "SELECT max(created_ms), max(interval_ms), count() FROM {db}.run_heartbeats WHERE run_id = {run:String}"
    ),
    "attributes": (
        "SELECT key, argMax(value, created_ms), argMax(has_value, created_ms) FROM {db}.run_attributes "
        "WHERE run_id = {run:String} AND kind = {kind:String} GROUP BY key ORDER BY key"
    ),
    "metric_names": (
        "SELECT name, any(kind), min(first_ms) AS f FROM {db}.metric_names WHERE run_id = {run:String} "
        "GROUP BY name ORDER BY f, name"
    ),
    "experiment_of_run": "SELECT any(experiment) FROM {db}.metric_names WHERE run_id = {run:String}",
    "scalars": (
        "SELECT name, step, time_ms, value, text, is_text FROM {db}.metric_scalars "
        "WHERE experiment = {experiment:String} AND run_id = {run:String} AND has({names:Array(String)}, name) "
        "ORDER BY name, step, time_ms, writer_id, seq, idx LIMIT 1 BY name, writer_id, seq, idx"
    ),
    "metric_series": (
        "SELECT run_id, value, is_text FROM {db}.metric_scalars "
        "WHERE experiment = {experiment:String} AND name = {name:String} AND has({runs:Array(String)}, run_id) "
        "ORDER BY run_id, step, time_ms, writer_id, seq, idx LIMIT 1 BY run_id, writer_id, seq, idx"
    ),
    "metric_rows": (
        "SELECT name, kind, created_ms, writer_id, seq, row_idx, col_names, col_numbers, col_texts, col_is_text "
        "FROM {db}.metric_rows WHERE run_id = {run:String} AND has({names:Array(String)}, name) "
        "ORDER BY name, created_ms, writer_id, seq, row_idx LIMIT 1 BY name, created_ms, writer_id, seq, row_idx"
    ),
    "images": (
        "SELECT name, file_path FROM {db}.run_images WHERE run_id = {run:String} "
        "AND has({names:Array(String)}, name) "
        "ORDER BY name, created_ms, writer_id, seq LIMIT 1 BY name, created_ms, writer_id, seq"
    ),
    "file_names": "SELECT DISTINCT path FROM {db}.run_files WHERE run_id = {run:String} ORDER BY path",
    "file_uploads": (
        "SELECT upload_id, max(created_ms) AS c, any(chunk_count), uniqExact(chunk_index) FROM {db}.run_files "
        "WHERE run_id = {run:String} AND path = {path:String} GROUP BY upload_id ORDER BY c DESC, upload_id DESC"
    ),
    "file_chunks": (
        "SELECT chunk_index, chunk_count, total_size, sha256, hex(data) FROM {db}.run_files "
        "WHERE run_id = {run:String} AND path = {path:String} AND upload_id = {upload:String} "
        "ORDER BY chunk_index LIMIT 1 BY chunk_index"
    ),
    "logs": (
        "SELECT time_ms, stream, logger, level, message, exc_text FROM {db}.run_logs WHERE run_id = {run:String} "
        "ORDER BY time_ms, writer_id, seq, idx LIMIT 1 BY writer_id, seq, idx"
    ),
    "writer_progress": (
        "SELECT max(seq) FROM {db}.writer_progress WHERE run_id = {run:String} AND writer_id = {writer:String}"
    ),
    # MLflow's view (runstream.server): numeric scalar points only; identical points (step, time, value) once.
    "mlflow_experiments": "SELECT experiment, min(start_ms), max(start_ms) FROM {db}.runs GROUP BY experiment",
    "mlflow_latest_scalars": (
        "SELECT name, value, time_ms, step FROM {db}.metric_scalars WHERE run_id = {run:String} AND is_text = 0 "
        "ORDER BY name, step DESC, time_ms DESC, value DESC LIMIT 1 BY name"
    ),
    "mlflow_latest_scalars_of_experiment": (
        "SELECT run_id, name, value, time_ms, step FROM {db}.metric_scalars "
        "WHERE experiment = {experiment:String} AND is_text = 0 "
        "ORDER BY run_id, name, step DESC, time_ms DESC, value DESC LIMIT 1 BY run_id, name"
    ),
    "mlflow_attributes_of_experiment": (
        "SELECT run_id, kind, key, argMax(value, created_ms), argMax(has_value, created_ms) FROM {db}.run_attributes "
        "WHERE experiment = {experiment:String} GROUP BY run_id, kind, key"
    ),
    "mlflow_history": (  # columns, one row; the caller sorts and drops re-delivered duplicates
        "SELECT groupArray(time_ms), groupArray(step), groupArray(value) FROM {db}.metric_scalars "
        "WHERE experiment = {experiment:String} AND run_id = {run:String} AND name = {name:String} AND is_text = 0"
    ),
    "mlflow_file_sizes": (
        "SELECT path, argMax(total_size, created_ms) FROM {db}.run_files WHERE run_id = {run:String} GROUP BY path "
        "ORDER BY path"
    ),
    "rejections": (
        "SELECT reason, detail, event_type, source, source_offset, item, created_ms FROM {db}.rejected_events "
        "WHERE run_id = {run:String} ORDER BY created_ms, source, source_offset, item "
        "LIMIT 1 BY reason, source, source_offset, item"
    ),
})

if set(_SDK_QUERIES) & set(UI_QUERIES):
    raise RuntimeError(f"read queries named twice: {sorted(set(_SDK_QUERIES) & set(UI_QUERIES))}")

READ_QUERIES: Mapping[str, str] = MappingProxyType({**_SDK_QUERIES, **UI_QUERIES})
"""Query name -> SQL with ``{db}`` and ``{name:Type}`` placeholders (rendered by :mod:`store.sql`): the
SDK's reads, and the web UI's (``ui_*``, :data:`store.ui_queries.UI_QUERIES`)."""


class ReadQueries(Protocol):
    """Runs a read query of :data:`READ_QUERIES` by name (a store in-process, or the home's query socket)."""

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of query ``name`` with ``params``; ``KeyError`` for an unknown name, ``StoreError`` on failure."""
        ...


_NOT_CREATED_YET = frozenset({60, 81})
"""UNKNOWN_TABLE, UNKNOWN_DATABASE: readers never create them (only ingest migrates), so nothing was ingested yet."""


class StoreQueries:
    """:class:`ReadQueries` on a store this process has open.

    A database or table that ingest has not created yet reads as empty: a
    reader never runs DDL (a read-only user can read).
    """

    def __init__(self, runner: QueryRunner) -> None:
        self._runner = runner

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._runner.query(READ_QUERIES[name], params)
        except StoreError as exc:
            if exc.code in _NOT_CREATED_YET:
                return []
            raise

    def fetch_encoded(self, name: str, params: Mapping[str, Any]) -> bytes | None:
        """chDB's own encoding of :meth:`fetch`'s rows (see ``store._results.parse_rows``), when the runner
        can give it (a chDB reader); None when it cannot. ``b""`` is no rows."""
        encoded = getattr(self._runner, "query_encoded", None)
        if encoded is None:
            return None
        try:
            return bytes(encoded(READ_QUERIES[name], params))
        except StoreError as exc:
            if exc.code in _NOT_CREATED_YET:
                return b""
            raise
