"""One run as its page shows it: details, what it logged and how, tables, images, files, output.

- :func:`run_details`: status (with the "process lost" rule), error, times,
  tags, properties, parent and children count.
- :func:`run_metrics`: the run's catalogue, one entry per metric name with the
  chart it gets: ``curve`` (``run.log`` of numbers, several steps), ``value``
  (a single value or strings: a row of the values table), ``list``
  (``log_list``), ``row``/``table`` (``log_row``/``log_table``; two-variable
  charts over the numeric ``columns``), ``image``.
- :func:`table_rows`: the rows of a list/row/table metric (the first
  :data:`TABLE_ROWS_CAP`), columnar.
- :func:`images`: images of one or more runs, per name in logging order (an
  image's index is its "step" for the gallery's slider).
- :func:`files` and :func:`read_file`: uploaded files, and one file's bytes
  (its latest complete upload, sha256 checked).
- :func:`logs`: captured output and ``logging`` records, the last lines or those from a time on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._sqlparts import Reads, finite_or_none, in_array, in_array_params, text_of
from .errors import FileNotFound, RunNotFound
from .run_table import effective_status

__all__ = [
    "QUERIES", "TABLE_ROWS_CAP", "LOG_LINES_CAP", "RunDetails", "MetricInfo", "TableRows", "Images", "Files",
    "LogLines", "run_details", "run_metrics", "table_rows", "images", "files", "read_file", "logs",
]

TABLE_ROWS_CAP = 5000
"""Rows a table view returns (a larger table says ``truncated``; its charts still cover every row)."""

LOG_LINES_CAP = 5000
"""Lines one log request returns."""


@dataclass(frozen=True, slots=True)
class RunDetails:
    run_id: str
    experiment: str
    display_name: str
    parent_run_id: str
    kind: str
    host: str
    pid: int
    start_ms: int
    status: str
    error: str | None
    end_ms: int | None
    last_heartbeat_ms: int | None
    tags: dict[str, str]
    properties: dict[str, str]
    children: int


# The run, its children count and its heartbeats in one round trip (scalar subqueries).
_Q_RUN = (
    "SELECT run_id, any(experiment), any(parent_run_id), any(display_name), any(kind), any(host), any(pid), "
    "min(start_ms), (SELECT uniqExact(run_id) FROM {db}.runs WHERE parent_run_id = {run:String}), "
    "(SELECT max(created_ms) FROM {db}.run_heartbeats WHERE run_id = {run:String}), "
    "(SELECT max(interval_ms) FROM {db}.run_heartbeats WHERE run_id = {run:String}), "
    "(SELECT count() FROM {db}.run_heartbeats WHERE run_id = {run:String}) "
    "FROM {db}.runs WHERE run_id = {run:String} GROUP BY run_id"
)
_Q_STATUS = (
    "SELECT status, error_details, created_ms FROM {db}.run_status WHERE run_id = {run:String} "
    "ORDER BY created_ms DESC, seq DESC LIMIT 1"
)
_Q_ATTRIBUTES = (
    "SELECT kind, key, argMax(value, created_ms), argMax(has_value, created_ms) FROM {db}.run_attributes "
    "WHERE run_id = {run:String} GROUP BY kind, key ORDER BY kind, key"
)


def run_details(reads: Reads, run_id: str, *, now_ms: float, lost_after_s: float = 300.0) -> RunDetails:
    """The run's header; :class:`~store.errors.RunNotFound` when no such run was ingested."""
    args = {"run": run_id}
    rows = reads.fetch("ui_view_run", args)
    if not rows:
        raise RunNotFound(f"no run {run_id!r}")
    r = rows[0]
    start = int(r[7])
    st = reads.fetch("ui_view_status", args)
    beat = int(r[9] or 0) if int(r[11] or 0) else None
    interval = int(r[10] or 0) if beat else 0
    if st:
        raw_status, details, changed = str(st[0][0]), st[0][1] or None, int(st[0][2])
    else:
        raw_status, details, changed = "Running", None, start
    status, error = effective_status(raw_status, details, changed, beat, interval, now_ms=now_ms,
                                     lost_after_s=lost_after_s)
    tags: dict[str, str] = {}
    properties: dict[str, str] = {}
    for kind, key, value, has_value in reads.fetch("ui_view_attributes", args):
        (tags if kind == "tag" else properties)[str(key)] = str(value) if int(has_value) else ""
    return RunDetails(
        run_id=str(r[0]), experiment=str(r[1]), parent_run_id=str(r[2] or ""), display_name=str(r[3] or ""),
        kind=str(r[4] or ""), host=str(r[5] or ""), pid=int(r[6]), start_ms=start, status=status, error=error,
        end_ms=changed if st and raw_status != "Running" else None, last_heartbeat_ms=beat, tags=tags,
        properties=properties, children=int(r[8] or 0),
    )


# -- what the run logged ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric name of a run and how to show it."""

    name: str
    kind: str
    """``scalar``, ``list``, ``row``, ``table`` or ``image`` (as logged)."""
    chart: str
    """``curve``, ``value``, ``list``, ``row``, ``table``, ``image``."""
    count: int
    """Points, elements, rows or images (an upper bound until merges drop duplicates)."""
    columns: list[str]
    """Numeric columns of a row/table metric, in logged order."""
    text_columns: list[str]
    last: float | str | None
    """A ``value``'s (last) value; None otherwise."""
    first_ms: int


_Q_NAMES = (
    "SELECT name, any(kind), min(first_ms) AS f FROM {db}.metric_names WHERE run_id = {run:String} "
    "GROUP BY name ORDER BY f, name"
)
# Two steps, so that a run's page never reads its curves' steps and values: first how many points
# each name has and whether they are text (cheap columns); then, only for names with a few points
# or text, their steps and last value.
_Q_SCALAR_COUNTS = (
    "SELECT name, count(), max(is_text), min(is_text) FROM {db}.metric_scalars "
    "WHERE experiment = {experiment:String} AND run_id = {run:String} GROUP BY name"
)
_Q_SCALAR_LAST = (
    "SELECT name, min(step), max(step), argMax(value, step), argMax(text, step) FROM {db}.metric_scalars "
    "WHERE experiment = {experiment:String} AND run_id = {run:String} AND " + in_array("name", "names")
    + " GROUP BY name"
)
_FEW_POINTS = 3
"""At most this many rows: maybe one value logged once (duplicates of a re-delivery count until merged)."""
_Q_ROW_COLUMNS = (
    "SELECT name, c, min(p) AS first_pos, min(t) FROM {db}.metric_rows "
    "ARRAY JOIN col_names AS c, col_is_text AS t, arrayEnumerate(col_names) AS p "
    "WHERE run_id = {run:String} GROUP BY name, c ORDER BY name, first_pos, c"
)
_Q_ROW_COUNTS = (
    "SELECT name, uniqExact(writer_id, seq, row_idx) FROM {db}.metric_rows WHERE run_id = {run:String} GROUP BY name"
)
_Q_IMAGE_COUNTS = (
    "SELECT name, uniqExact(writer_id, seq) FROM {db}.run_images WHERE run_id = {run:String} GROUP BY name"
)


def run_metrics(reads: Reads, run_id: str, experiment: str) -> list[MetricInfo]:
    """Every metric name of the run, in first-logged order, with the chart it gets."""
    args = {"run": run_id, "experiment": experiment}
    names = reads.fetch("ui_view_names", args)
    kinds = {str(n): str(k) for n, k, _f in names}
    scalars: dict[str, tuple[int, bool, bool]] = {}
    last: dict[str, tuple[Any, ...]] = {}
    if "scalar" in kinds.values():
        scalars = {str(n): (int(c), bool(any_text), bool(all_text))
                   for n, c, any_text, all_text in reads.fetch("ui_view_scalar_counts", args)}
        few = [n for n, (c, any_text, _all) in scalars.items() if c <= _FEW_POINTS or any_text]
        if few:
            last = {str(r[0]): r[1:] for r in reads.fetch("ui_view_scalar_last", {**args, **in_array_params("names", few)})}
    numeric: dict[str, list[str]] = {}
    texts: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    if any(k in ("list", "row", "table") for k in kinds.values()):
        for name, column, _pos, all_text in reads.fetch("ui_view_row_columns", args):
            (texts if int(all_text) else numeric).setdefault(str(name), []).append(str(column))
        counts.update({str(n): int(c) for n, c in reads.fetch("ui_view_row_counts", args)})
    if "image" in kinds.values():
        counts.update({str(n): int(c) for n, c in reads.fetch("ui_view_image_counts", args)})
    out = []
    for name, kind, first in names:
        name, kind = str(name), str(kind)
        value: float | str | None = None
        chart = kind
        count = counts.get(name, 0)
        if kind == "scalar":
            summary = scalars.get(name)
            if summary is None:
                continue  # the name arrived before its points
            count, any_text, all_text = summary
            chart = "curve"
            if name in last:
                lo_step, hi_step, number, text = last[name]
                if all_text:
                    chart, value = "value", text_of(text)
                elif int(lo_step) == int(hi_step) and not any_text:
                    chart, value = "value", finite_or_none([number])[0]
        out.append(MetricInfo(name=name, kind=kind, chart=chart, count=count, columns=numeric.get(name, []),
                              text_columns=texts.get(name, []), last=value, first_ms=int(first)))
    return out


@dataclass(frozen=True, slots=True)
class TableRows:
    """A list/row/table metric as a table: ``columns`` in order, ``cells[column]`` one value per row."""

    columns: list[str]
    cells: dict[str, list[float | str | None]]
    rows: int
    truncated: bool


_Q_TABLE = (
    "SELECT col_names, col_numbers, col_texts, col_is_text FROM {db}.metric_rows "
    "WHERE run_id = {run:String} AND name = {name:String} "
    "ORDER BY created_ms, writer_id, seq, row_idx LIMIT 1 BY writer_id, seq, row_idx "
    f"LIMIT {TABLE_ROWS_CAP + 1}"
)


def table_rows(reads: Reads, run_id: str, name: str) -> TableRows:
    """The first :data:`TABLE_ROWS_CAP` rows of a list/row/table metric, in logging order.

    Lists have one column, named after the metric. Numbers that are NaN or ±inf read None.
    """
    rows = reads.fetch("ui_view_table", {"run": run_id, "name": name})
    truncated = len(rows) > TABLE_ROWS_CAP
    rows = rows[:TABLE_ROWS_CAP]
    columns: list[str] = []
    cells: dict[str, list[float | str | None]] = {}
    for i, (names, numbers, texts, is_text) in enumerate(rows):
        for c, number, text, flag in zip(names, numbers, texts, is_text):
            c = str(c) if c else name
            if c not in cells:
                columns.append(c)
                cells[c] = [None] * len(rows)
            cells[c][i] = text_of(text) if int(flag) else finite_or_none([number])[0]
    return TableRows(columns, cells, len(rows), truncated)


# -- images and files ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Images:
    """Images of several runs, columnar, ordered by run, name, logging order; ``index`` is the slider's step."""

    run_id: list[str]
    name: list[str]
    index: list[int]
    path: list[str]
    description: list[str]
    created_ms: list[int]
    content_type: list[str]


_Q_IMAGES = (
    "SELECT run_id, name, file_path, description, created_ms, content_type FROM {db}.run_images "
    "WHERE " + in_array("run_id", "runs") + " AND ({name:String} = '' OR name = {name:String}) "
    "ORDER BY run_id, name, created_ms, writer_id, seq "
    "LIMIT 1 BY run_id, name, created_ms, writer_id, seq"
)


def images(reads: Reads, runs: Sequence[str], name: str | None = None) -> Images:
    """Every image (or those named ``name``) of ``runs``."""
    params = {**in_array_params("runs", list(dict.fromkeys(runs))), "name": name or ""}
    out = Images([], [], [], [], [], [], [])
    last: tuple[str, str] | None = None
    index = 0
    for run_id, img_name, path, description, created, content_type in reads.fetch("ui_view_images", params):
        key = (str(run_id), str(img_name))
        index = index + 1 if key == last else 0
        last = key
        out.run_id.append(key[0])
        out.name.append(key[1])
        out.index.append(index)
        out.path.append(str(path))
        out.description.append(str(description))
        out.created_ms.append(int(created))
        out.content_type.append(str(content_type))
    return out


@dataclass(frozen=True, slots=True)
class Files:
    path: list[str]
    size: list[int]
    content_type: list[str]
    created_ms: list[int]
    complete: list[bool]


_Q_FILES = (
    "SELECT path, argMax(total_size, created_ms), argMax(content_type, created_ms), max(created_ms), "
    "argMax(chunk_count, created_ms), uniqExact(upload_id, chunk_index), uniqExact(upload_id) "
    "FROM {db}.run_files WHERE run_id = {run:String} GROUP BY path ORDER BY path"
)


def files(reads: Reads, run_id: str) -> Files:
    """The run's uploaded files (images included, under ``images/``); ``complete`` is False mid-upload."""
    out = Files([], [], [], [], [])
    for path, size, content_type, created, chunk_count, chunks, uploads in reads.fetch("ui_view_files", {"run": run_id}):
        out.path.append(str(path))
        out.size.append(int(size))
        out.content_type.append(str(content_type))
        out.created_ms.append(int(created))
        # A single upload with every chunk, or several uploads (the newest may still be arriving).
        out.complete.append(int(uploads) > 1 or int(chunks) >= int(chunk_count))
    return out


_Q_UPLOADS = (
    "SELECT upload_id, max(created_ms) AS c, any(chunk_count), uniqExact(chunk_index), any(content_type) "
    "FROM {db}.run_files WHERE run_id = {run:String} AND path = {path:String} "
    "GROUP BY upload_id ORDER BY c DESC, upload_id DESC"
)
_Q_CHUNKS = (
    "SELECT chunk_index, total_size, sha256, hex(data) FROM {db}.run_files "
    "WHERE run_id = {run:String} AND path = {path:String} AND upload_id = {upload:String} "
    "ORDER BY chunk_index LIMIT 1 BY chunk_index"
)


def read_file(reads: Reads, run_id: str, path: str) -> tuple[bytes, str]:
    """``(bytes, content type)`` of the latest complete upload of ``path``.

    :class:`~store.errors.FileNotFound` when the run has no such file or no complete
    upload of it; ``ValueError`` when the bytes do not match their sha256 (corrupt).
    """
    args = {"run": run_id, "path": path}
    uploads = [u for u in reads.fetch("ui_view_uploads", args) if int(u[3]) == int(u[2])]
    if not uploads:
        raise FileNotFound(f"run {run_id!r} has no complete file {path!r}")
    chunks = reads.fetch("ui_view_chunks", {**args, "upload": uploads[0][0]})
    data = b"".join(bytes.fromhex(str(c[3])) for c in chunks)
    if len(data) != int(chunks[0][1]) or hashlib.sha256(data).hexdigest() != chunks[0][2]:
        raise ValueError(f"file {path!r} of run {run_id!r} is corrupt (sha256 mismatch)")
    return data, str(uploads[0][4]) or "application/octet-stream"


# -- captured output -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LogLines:
    """Lines in time order; ``key`` (writer:seq:idx) tells a line seen before when polling with overlap."""

    time_ms: list[int]
    stream: list[str]
    logger: list[str]
    level: list[int]
    message: list[str]
    exc_text: list[str]
    key: list[str]
    truncated: bool
    """More lines matched than :data:`LOG_LINES_CAP`."""


_LOG_COLUMNS = "time_ms, stream, logger, level, message, exc_text, writer_id, seq, idx"
_Q_LOGS_TAIL = (
    f"SELECT {_LOG_COLUMNS} FROM {{db}}.run_logs WHERE run_id = {{run:String}} "
    f"ORDER BY time_ms DESC, writer_id DESC, seq DESC, idx DESC LIMIT 1 BY writer_id, seq, idx LIMIT {LOG_LINES_CAP + 1}"
)
_Q_LOGS_SINCE = (
    f"SELECT {_LOG_COLUMNS} FROM {{db}}.run_logs WHERE run_id = {{run:String}} AND time_ms >= {{since:Int64}} "
    f"ORDER BY time_ms, writer_id, seq, idx LIMIT 1 BY writer_id, seq, idx LIMIT {LOG_LINES_CAP + 1}"
)


def logs(reads: Reads, run_id: str, *, since_ms: int | None = None) -> LogLines:
    """The last :data:`LOG_LINES_CAP` lines, or (``since_ms``) the first ones at or after that time.

    Following a running run: ask again with the last time seen (or a little
    before it, since lines of several writers may arrive out of time order)
    and drop lines whose ``key`` was seen.
    """
    if since_ms is None:
        rows = reads.fetch("ui_view_logs_tail", {"run": run_id})
        truncated = len(rows) > LOG_LINES_CAP
        rows = rows[:LOG_LINES_CAP][::-1]
    else:
        rows = reads.fetch("ui_view_logs_since", {"run": run_id, "since": int(since_ms)})
        truncated = len(rows) > LOG_LINES_CAP
        rows = rows[:LOG_LINES_CAP]
    return LogLines(
        time_ms=[int(r[0]) for r in rows], stream=[str(r[1]) for r in rows], logger=[str(r[2]) for r in rows],
        level=[int(r[3]) for r in rows], message=[text_of(r[4]) for r in rows], exc_text=[text_of(r[5]) for r in rows],
        key=[f"{r[6]}:{r[7]}:{r[8]}" for r in rows], truncated=truncated,
    )


QUERIES: Mapping[str, str] = MappingProxyType({
    "ui_view_run": _Q_RUN,
    "ui_view_status": _Q_STATUS,
    "ui_view_attributes": _Q_ATTRIBUTES,
    "ui_view_names": _Q_NAMES,
    "ui_view_scalar_counts": _Q_SCALAR_COUNTS,
    "ui_view_scalar_last": _Q_SCALAR_LAST,
    "ui_view_row_columns": _Q_ROW_COLUMNS,
    "ui_view_row_counts": _Q_ROW_COUNTS,
    "ui_view_image_counts": _Q_IMAGE_COUNTS,
    "ui_view_table": _Q_TABLE,
    "ui_view_images": _Q_IMAGES,
    "ui_view_files": _Q_FILES,
    "ui_view_uploads": _Q_UPLOADS,
    "ui_view_chunks": _Q_CHUNKS,
    "ui_view_logs_tail": _Q_LOGS_TAIL,
    "ui_view_logs_since": _Q_LOGS_SINCE,
})
"""This module's read queries by name (part of :data:`store.ui_queries.UI_QUERIES`)."""
