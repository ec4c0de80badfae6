"""``Experiment`` and ``Run``: the Azure-ML-style logging API.

An :class:`Experiment` names a group of runs in a workspace; a :class:`Run`
logs metrics, files, tags and properties, ends, and reads itself back.

Every logging method checks its arguments first and raises a
:mod:`producers.errors` error before anything is queued, so a failed call
logs nothing. Queuing never does I/O on the caller's thread; the emitter's
thread encodes and sends. Reading back (``get_metrics`` and friends) flushes
this process's events, waits until they are visible, and asks the store
(:mod:`producers.reading`). Submitted scripts run through :mod:`producers.jobs`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Iterator, Mapping, Protocol, runtime_checkable

from schemas.errors import ConfigurationError
from schemas.records import (
    FINAL_STATUSES,
    Column,
    FileChunk,
    ImageLogged,
    ListLogged,
    LogLine,
    PropertiesSet,
    RowLogged,
    RunStarted,
    RunStatusChanged,
    TableLogged,
    TagsSet,
)

from . import lifecycle
from .chunking import column_chunks, column_size, table_chunks
from .emitter import RunState
from .errors import InvalidLogCall, InvalidValueType, RunNotActive
from .files import Upload, check_artifact_path, folder_files, image_bytes, open_upload, slug
from .jobs.config import ScriptRunConfig
from .jobs.environment import ENV_EXPERIMENT, ENV_PARENT_RUN_ID, ENV_RUN_ID
from .jobs.process import start_job
from .jobs.waiting import wait_for_completion
from .values import (
    check_attributes,
    check_experiment_name,
    check_name,
    coerce_step,
    coerce_value,
    column_of,
    truncate_middle,
)
from .workspace import Workspace

__all__ = ["Experiment", "Run", "SubmittableConfig", "ENV_RUN_ID", "ENV_EXPERIMENT", "ENV_PARENT_RUN_ID"]

_log = logging.getLogger("runstream.run")

_context_lock = threading.Lock()
_context_run: Run | None = None
_uncaught: list[str] = []


def _new_run_id(experiment: str) -> str:
    # Azure ML style: <experiment>_<unix seconds>_<random>; at most 256 characters.
    return f"{experiment[:200]}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def _field(info: Any, name: str, default: Any = None) -> Any:
    """A field of a reader's run record, whether it is an object or a mapping."""
    if isinstance(info, Mapping):
        return info.get(name, default)
    return getattr(info, name, default)


@runtime_checkable
class SubmittableConfig(Protocol):
    """A run configuration other than a script that ``Experiment.submit`` takes (a ``HyperDriveConfig``)."""

    def submit_to(self, experiment: Experiment, tags: Mapping[str, str | None] | None) -> Run:
        """Start the run it describes in ``experiment``; returns at once."""
        ...


def _attribute_filter(run: Run, tags: str | Mapping[str, str] | None, properties: str | Mapping[str, str] | None
                      ) -> bool:
    """Azure ML's ``tags=``/``properties=`` filters: a key that must be there, or key -> value pairs that must."""
    for wanted, read in ((tags, run.get_tags), (properties, run.get_properties)):
        if wanted is None:
            continue
        have = read()
        if isinstance(wanted, str):
            if wanted not in have:
                return False
        elif any(have.get(key) != value for key, value in wanted.items()):
            return False
    return True


class Experiment:
    """A named group of runs in a workspace."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        if not isinstance(workspace, Workspace):
            raise InvalidValueType(f"workspace must be a Workspace, got {type(workspace).__name__}")
        self.workspace = workspace
        self.name = check_experiment_name(name, workspace.settings.limits.max_id_length)

    def start_logging(
        self,
        display_name: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str] | None = None,
        *,
        snapshot_directory: str | None = None,
        outputs: str | None = None,
    ) -> Run:
        """Start an interactive run; use it as a context manager or call ``complete()``.

        ``snapshot_directory`` and ``outputs`` are accepted for Azure ML
        compatibility and ignored (runstream takes no code snapshots).
        """
        if snapshot_directory is not None or outputs is not None:
            _log.debug("start_logging: snapshot_directory/outputs are ignored by runstream")
        return Run._start(self, display_name=display_name, tags=tags, properties=properties, kind="interactive")

    def submit(self, config: ScriptRunConfig | SubmittableConfig, tags: Mapping[str, str | None] | None = None,
               **_azure_kwargs: Any) -> Run:
        """Run ``config``'s script as a new run of this experiment, in a child process; returns at once.

        The script runs in ``config.source_directory`` with the run as its
        ``Run.get_context()``; its stdout, stderr and ``logging`` records are
        kept as the run's log; ``./outputs`` is uploaded when it ends; its exit
        decides the status. ``run.wait_for_completion()`` waits for it. See
        :mod:`producers.jobs`. ``ConfigurationError`` (nothing logged) when
        the folder or the script does not exist.

        A ``HyperDriveConfig`` starts a sweep instead and returns its
        ``HyperDriveRun`` (see :mod:`producers.hyperdrive`).
        """
        if _azure_kwargs:
            _log.debug("submit: ignoring %s", ", ".join(sorted(_azure_kwargs)))
        if isinstance(config, SubmittableConfig) and not isinstance(config, ScriptRunConfig):
            return config.submit_to(self, tags)
        if not isinstance(config, ScriptRunConfig):
            raise InvalidValueType(f"submit takes a ScriptRunConfig or a HyperDriveConfig, got {type(config).__name__}")
        config.resolve()  # a missing folder or script fails here, before the run exists
        run = Run._start(self, display_name=None, tags=tags, properties=None, kind="submitted")
        run._job = start_job(run, config)
        return run

    def get_runs(self, type: str | None = None, tags: str | Mapping[str, str] | None = None,
                 properties: str | Mapping[str, str] | None = None, include_children: bool = False) -> Iterator[Run]:
        """The experiment's top-level runs (children too with ``include_children=True``), newest first, as
        :class:`Run` handles (a sweep's run as a ``HyperDriveRun``).

        As in Azure ML, ``type`` keeps runs of that kind ("interactive", "submitted", "hyperdrive", "child"),
        ``tags``/``properties`` keep runs having that key (a str) or those key/value pairs (a dict).
        """
        self.workspace.flush(self.workspace.settings.flush_timeout_s)
        for info in self.workspace.reader().get_runs(self.name):
            if not include_children and _field(info, "parent_run_id"):
                continue
            if type is not None and _field(info, "kind", "interactive") != type:
                continue
            run = Run._from_info(self, info)
            if _attribute_filter(run, tags, properties):
                yield run

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.workspace is self.workspace and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self.workspace), self.name))

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace!r})"


class Run:
    """One run: log metrics, files, tags; complete/fail/cancel it; read it back.

    ``Run(experiment, run_id)`` returns a handle to an existing run (read
    through ``producers.reading``; a run this process has open is used
    directly). New runs come from ``experiment.start_logging()``,
    ``run.child_run()`` and ``Run.get_context()``.

    An ended run (Completed, Failed, Canceled) still takes data, from any
    process, at any time, as in Azure ML and MLflow: metrics of every kind,
    tags, properties and files; its status stays. Only its lifecycle is
    closed: ``complete``/``fail``/``cancel`` again, ``child_run`` and
    captured output (``log_lines``) raise :class:`RunNotActive`.
    """

    def __init__(self, experiment: Experiment, run_id: str) -> None:
        if not isinstance(experiment, Experiment):
            raise InvalidValueType(f"experiment must be an Experiment, got {type(experiment).__name__}")
        if not isinstance(run_id, str) or not run_id:
            raise InvalidValueType("run_id must be a non-empty str")
        ws = experiment.workspace
        st = ws.known_run_state(run_id)
        parent_id = display_name = None
        kind = "interactive"
        if st is None:
            info = ws.reader().get_run(experiment.name, run_id)
            parent_id = _field(info, "parent_run_id")
            display_name = _field(info, "display_name")
            kind = _field(info, "kind", "interactive") or "interactive"
            st = ws.run_state(run_id, experiment.name, heartbeat=False)
            status = _field(info, "status", "Running") or "Running"
            if status in FINAL_STATUSES:
                st.active = False
                st.status = status
        self._init(experiment, st, parent=None, parent_id=parent_id, display_name=display_name, kind=kind)

    def _init(self, experiment: Experiment, st: RunState, *, parent: Run | None, parent_id: str | None,
              display_name: str | None, kind: str) -> None:
        self._experiment = experiment
        self._st = st
        self._parent = parent
        self._parent_id = parent.id if parent is not None else parent_id
        self._display_name = display_name
        self._kind = kind
        limits = experiment.workspace.settings.limits
        self._limits = limits
        self._max_text = limits.max_string_value_length
        self._job: Any = None  # the producers.jobs.Job, in the process that submitted this run

    @classmethod
    def _attach(cls, experiment: Experiment, run_id: str, *, parent_id: str | None = None,
                display_name: str | None = None, kind: str = "submitted", heartbeat: bool = False) -> Run:
        """A handle to a run started elsewhere; emits nothing (no second RunStarted)."""
        st = experiment.workspace.run_state(run_id, experiment.name, heartbeat=heartbeat)
        run = cls.__new__(cls)
        run._init(experiment, st, parent=None, parent_id=parent_id, display_name=display_name, kind=kind)
        return run

    _kinds: dict[str, type[Run]] = {}
    """Run kind -> the class its handles are (``"hyperdrive"`` -> ``HyperDriveRun``), filled at import."""

    @classmethod
    def _register_kind(cls, kind: str, run_class: type[Run]) -> None:
        """Handles to runs of ``kind`` read back from the store are ``run_class`` (a subclass of Run)."""
        cls._kinds[kind] = run_class

    @classmethod
    def _from_info(cls, experiment: Experiment, info: Any) -> Run:
        """A handle built from a reader's run record (``experiment.get_runs()``)."""
        run_id = _field(info, "run_id")
        known = experiment.workspace.known_run_state(run_id)
        kind = _field(info, "kind", "interactive") or "interactive"
        run_class = cls._kinds.get(kind, cls) if cls is Run else cls
        run = run_class._attach(experiment, run_id, parent_id=_field(info, "parent_run_id"),
                                display_name=_field(info, "display_name"), kind=kind)
        status = _field(info, "status", "Running")
        if known is None and status in FINAL_STATUSES:
            run._st.active = False
            run._st.status = status
        return run

    @classmethod
    def _start(cls, experiment: Experiment, *, display_name: str | None, tags: Mapping[str, Any] | None,
               properties: Mapping[str, Any] | None, kind: str, parent: Run | None = None,
               run_id: str | None = None) -> Run:
        ws = experiment.workspace
        limits = ws.settings.limits
        if run_id is None:
            run_id = _new_run_id(experiment.name)
        elif not isinstance(run_id, str) or not run_id or len(run_id) > limits.max_id_length:
            raise InvalidLogCall(f"run_id must be a str of 1-{limits.max_id_length} characters")
        if display_name is not None:
            if not isinstance(display_name, str):
                raise InvalidValueType(f"display_name must be a str, got {type(display_name).__name__}")
            if len(display_name) > limits.max_id_length:
                raise InvalidLogCall(f"display_name is {len(display_name)} characters; the limit is {limits.max_id_length}")
        tag_values = check_attributes(tags or {}, limits, what="tag", allow_none=True)
        if len(tag_values) > limits.max_tags:
            raise InvalidLogCall(f"{len(tag_values)} tags; the limit is {limits.max_tags}")
        prop_values = check_attributes(properties or {}, limits, what="property", allow_none=False)
        if len(prop_values) > limits.max_properties:
            raise InvalidLogCall(f"{len(prop_values)} properties; the limit is {limits.max_properties}")
        st = ws.run_state(run_id, experiment.name, heartbeat=True)
        st.tags.update(tag_values)
        st.properties.update({k: v for k, v in prop_values.items() if v is not None})
        ws.emitter.enqueue(
            st,
            RunStarted,
            {
                "parent_run_id": parent.id if parent is not None else None,
                "display_name": display_name,
                "kind": kind,
                "tags": tag_values,
                "properties": dict(st.properties),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
            size=256 + sum(len(k) + len(v or "") for k, v in tag_values.items())
            + sum(len(k) + len(v or "") for k, v in prop_values.items()),
        )
        run = cls.__new__(cls)
        run._init(experiment, st, parent=parent, parent_id=None, display_name=display_name, kind=kind)
        return run

    # -- identity ------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run id."""
        return self._st.run_id

    @property
    def experiment(self) -> Experiment:
        """The run's experiment."""
        return self._experiment

    @property
    def display_name(self) -> str | None:
        """The display name given at start (None if none)."""
        return self._display_name

    @property
    def parent(self) -> Run | None:
        """The parent run, or None."""
        if self._parent is None and self._parent_id is not None:
            self._parent = Run._attach(self._experiment, self._parent_id, kind="interactive")
        return self._parent

    @property
    def status(self) -> str:
        """This process's view of the status: Running until complete/fail/cancel (``get_status()`` reads the store)."""
        return self._st.status

    @property
    def kind(self) -> str:
        """interactive | child | submitted."""
        return self._kind

    # -- metrics -------------------------------------------------------------------

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value of metric ``name`` (a series when called repeatedly); ``step`` defaults to a per-name counter.

        Values: int, float, bool, numpy scalars / 0-d arrays, objects with
        ``.item()``, or a str of at most 255 characters. NaN and infinities
        are kept.
        """
        st = self._st
        if type(value) is not float or step is not None or description:
            self._log_general(st, name, value, description, step)
            return
        # The hot path, inlined from RunState.add_point: a known name, room in
        # the open segment. Four appends under a short lock; nothing else.
        lock = st.lock
        lock.acquire()
        try:
            entry = st.names.get(name)
            seg = st.seg
            if entry is not None and seg is not None:
                idx = seg.idx
                if len(idx) < seg.cap:
                    s = entry[1]
                    entry[1] = s + 1
                    idx.append(entry[0])
                    seg.steps.append(s)
                    seg.times.append(st.clock())
                    seg.values.append(value)
                    return
        finally:
            lock.release()
        st.emitter._add_point_slow(st, name, value, None, "", None)

    def _log_general(self, st: RunState, name: str, value: Any, description: str, step: Any) -> None:
        kind = type(value)
        text = None
        if kind is int:
            try:
                number = float(value)
            except OverflowError:
                raise InvalidLogCall(f"integer {value} is too large for a float64 metric") from None
        elif kind is float:
            number = value
        else:
            number, text = coerce_value(value, self._max_text)
        if step is not None:
            step = coerce_step(step)
        st.add_point(name, number, text, description, step)

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list (any iterable, generators included) of values as one metric."""
        name = check_name(name, self._limits.max_name_length)
        description = self._description(description)
        column = column_of(name, value, self._max_text)
        rows = len(column.numbers)
        events: list[tuple[type, dict[str, Any], int]] = [
            (ListLogged, {"name": name, "description": description, "values": chunk}, column_size(chunk))
            for chunk in column_chunks(column)
        ]
        self._enqueue_metric(name, "list", rows, events)

    def log_row(self, name: str, description: str | None = None, **columns: Any) -> None:
        """Log one row of named columns (``run.log_row("loss", epoch=1, value=0.5)``); repeated calls build a table."""
        name = check_name(name, self._limits.max_name_length)
        description = self._description(description)
        if not columns:
            raise InvalidLogCall("log_row needs at least one column: log_row(name, col=value, ...)")
        if len(columns) > self._limits.max_columns_per_row:
            raise InvalidLogCall(f"{len(columns)} columns; the limit is {self._limits.max_columns_per_row}")
        cells = []
        for column_name, cell in columns.items():
            check_name(column_name, self._limits.max_name_length, "column name")
            number, text = coerce_value(cell, self._max_text)
            cells.append(Column(column_name, [number], [0] if text is not None else [], [text] if text is not None else []))
        size = sum(len(c.name) + 16 + sum(len(t) for t in c.texts) for c in cells)
        self._enqueue_metric(name, "row", 1, [(RowLogged, {"name": name, "description": description, "columns": cells}, size)])

    def log_table(self, name: str, value: Mapping[str, Iterable[Any]], description: str = "") -> None:
        """Log a table: a dict of equal-length columns (``{"epoch": [1, 2], "loss": [0.5, 0.4]}``)."""
        name = check_name(name, self._limits.max_name_length)
        description = self._description(description)
        if not isinstance(value, Mapping):
            raise InvalidValueType(f"log_table takes a dict of columns, got {type(value).__name__}")
        if not value:
            raise InvalidLogCall("log_table needs at least one column")
        if len(value) > self._limits.max_columns_per_row:
            raise InvalidLogCall(f"{len(value)} columns; the limit is {self._limits.max_columns_per_row}")
        columns = []
        for column_name, cells in value.items():
            check_name(column_name, self._limits.max_name_length, "column name")
            columns.append(column_of(column_name, cells, self._max_text))
        lengths = {len(c.numbers) for c in columns}
        if len(lengths) != 1:
            detail = ", ".join(f"{c.name}={len(c.numbers)}" for c in columns)
            raise InvalidLogCall(f"log_table columns must have equal lengths: {detail}")
        rows = lengths.pop()
        events: list[tuple[type, dict[str, Any], int]] = [
            (TableLogged, {"name": name, "description": description, "columns": part}, sum(column_size(c) for c in part))
            for part in table_chunks(columns, rows)
        ]
        self._enqueue_metric(name, "table", rows, events)

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Log an image: a PNG/JPEG file (``path``) or a matplotlib Figure / the ``pyplot`` module (``plot``)."""
        name = check_name(name, self._limits.max_name_length)
        description = self._description(description)
        data, content_type = image_bytes(path, plot, self._limits.max_image_bytes)
        extension = "png" if content_type == "image/png" else "jpg"
        file_path = f"images/{slug(name)}/{uuid.uuid4().hex}.{extension}"
        events = self._chunk_events(file_path, content_type, data)
        events.append((ImageLogged, {"name": name, "description": description, "file_path": file_path,
                                     "content_type": content_type, "size": len(data)}, 256))
        self._enqueue_metric(name, "image", 1, events)

    def _enqueue_metric(self, name: str, kind: str, rows: int, events: list[tuple[type, dict[str, Any], int]]) -> None:
        st = self._st
        emitter = st.emitter
        emitter.enqueue_many(st, events, prepare=lambda: emitter.register_metric_locked(st, name, kind, rows),
                             ended_ok=True)

    def _description(self, description: Any) -> str:
        if description is None:
            return ""
        if not isinstance(description, str):
            raise InvalidValueType(f"description must be a str, got {type(description).__name__}")
        return description

    # -- files ---------------------------------------------------------------------

    def _chunk_events(self, path: str, content_type: str, data: bytes) -> list[tuple[type, dict[str, Any], int]]:
        chunk = self._experiment.workspace.settings.file_chunk_bytes
        count = max(1, -(-len(data) // chunk))
        digest = hashlib.sha256(data).hexdigest()
        upload_id = uuid.uuid4().hex
        return [
            (FileChunk, {"path": path, "upload_id": upload_id, "chunk_index": i, "chunk_count": count,
                         "total_size": len(data), "sha256": digest, "content_type": content_type,
                         "data": data[i * chunk:(i + 1) * chunk]}, len(data[i * chunk:(i + 1) * chunk]) + 256)
            for i in range(count)
        ]

    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | Any) -> None:
        """Upload a file (a path, or a binary/text stream) into the run's outputs as ``name``.

        Checked and opened at the call (a missing file, a bad name or a file
        over the limit raises here; a stream is copied, as it is the
        caller's); hashed and queued on the SDK's upload thread, so a large
        file never holds up training. The run's end, ``flush`` and exit wait
        for it. A file that grows past the limit meanwhile is not sent, with
        a warning. An ended run takes files too.
        """
        settings = self._experiment.workspace.settings
        upload = open_upload(name, path_or_stream, max_bytes=settings.limits.max_file_bytes,
                             chunk_bytes=settings.file_chunk_bytes)
        st = self._st
        st.emitter.uploads.submit(st.run_id, lambda: _send_upload(st, upload))

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> None:
        """Upload every file under folder ``path`` as ``name/<relative path>``; all are checked first."""
        prefix = check_artifact_path(name)
        settings = self._experiment.workspace.settings
        files = folder_files(path)
        for relative, full in files:
            check_artifact_path(f"{prefix}/{relative}")
            size = full.stat().st_size
            if size > settings.limits.max_file_bytes:
                raise InvalidLogCall(f"{full} is {size} bytes; the file limit is {settings.limits.max_file_bytes}")
        for relative, full in files:
            self.upload_file(f"{prefix}/{relative}", full)

    # -- tags and properties ---------------------------------------------------------

    def tag(self, key: str, value: str | None = None) -> None:
        """Set a tag; ``value=None`` makes a valueless tag."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, str | None] | Iterable[str]) -> None:
        """Set several tags at once (a dict, or an iterable of valueless tag names)."""
        if not isinstance(tags, Mapping):
            if isinstance(tags, str):
                raise InvalidValueType("set_tags takes a dict (or a list of valueless tag names), not a str")
            tags = {key: None for key in tags}
        values = check_attributes(tags, self._limits, what="tag", allow_none=True)
        if not values:
            return
        st = self._st
        limit = self._limits.max_tags

        def prepare() -> None:
            if len(st.tags.keys() | values.keys()) > limit:
                raise InvalidLogCall(f"run {st.run_id} would have more than {limit} tags")
            st.tags.update(values)

        size = sum(len(k) + len(v or "") for k, v in values.items())
        st.emitter.enqueue(st, TagsSet, {"tags": values}, size=size, prepare=prepare, ended_ok=True)

    def add_properties(self, properties: Mapping[str, str]) -> None:
        """Add properties; like Azure ML's they are immutable: a key keeps its first value."""
        if not isinstance(properties, Mapping):
            raise InvalidValueType(f"add_properties takes a dict, got {type(properties).__name__}")
        values = check_attributes(properties, self._limits, what="property", allow_none=False)
        if not values:
            return
        st = self._st
        limit = self._limits.max_properties

        def prepare() -> None:
            for key, value in values.items():
                old = st.properties.get(key)
                if old is not None and old != value:
                    raise InvalidLogCall(f"property {key!r} is already {old!r}; properties are immutable")
            if len(st.properties.keys() | values.keys()) > limit:
                raise InvalidLogCall(f"run {st.run_id} would have more than {limit} properties")
            st.properties.update({k: v for k, v in values.items() if v is not None})

        size = sum(len(k) + len(v or "") for k, v in values.items())
        st.emitter.enqueue(st, PropertiesSet, {"properties": values}, size=size, prepare=prepare, ended_ok=True)

    def get_tags(self) -> Any:
        """The run's tags, read back."""
        return self._read("get_tags")

    def get_properties(self) -> Any:
        """The run's properties, read back."""
        return self._read("get_properties")

    # -- captured output (RunLogHandler) ----------------------------------------------

    def log_lines(self, lines: Iterable[LogLine], *, wait: bool = True) -> bool:
        """Queue captured output lines / logging records (``schemas.LogLine``) for this run.

        ``wait=False`` never waits for room in the SDK's buffer: when the lines
        do not fit now, nothing is queued and the call returns False (a
        ``logging`` handler drops and counts them instead of stalling).
        """
        if wait:
            self._st.emitter.add_log_lines(self._st, lines)
            return True
        return self._st.emitter.offer_log_lines(self._st, list(lines))

    # -- lifecycle -----------------------------------------------------------------

    def complete(self) -> None:
        """Mark the run Completed and deliver its events (waits up to ``flush_timeout_s``)."""
        self._end("Completed", None)

    def fail(self, error_details: str | BaseException | None = None, error_code: str | None = None) -> None:
        """Mark the run Failed; an exception's traceback becomes the error details (cut to 3,000 characters)."""
        text: str | None
        if isinstance(error_details, BaseException):
            text = "".join(traceback.format_exception(type(error_details), error_details, error_details.__traceback__))
        elif error_details is None or isinstance(error_details, str):
            text = error_details
        else:
            raise InvalidValueType(f"error_details must be a str or an exception, got {type(error_details).__name__}")
        if error_code:
            text = f"{error_code}: {text}" if text else str(error_code)
        if text is not None:
            text = truncate_middle(text, self._limits.max_error_details_length)
        self._end("Failed", text)

    def cancel(self) -> None:
        """Mark the run Canceled."""
        self._end("Canceled", None)

    def _end(self, status: str, details: str | None, *, flush: bool = True) -> None:
        st = self._st
        st.emitter.uploads.wait(st.run_id)  # the final status comes after every file of the run
        st.emitter.enqueue(st, RunStatusChanged, {"status": status, "error_details": details},
                           size=256 + len(details or ""), end=status)
        if flush:
            timeout = self._experiment.workspace.settings.flush_timeout_s
            if not st.emitter.flush(timeout):
                _log.warning("run %s: events not all delivered within %.0fs; still trying in the background",
                             st.run_id, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything logged so far (this workspace's runs); False on timeout."""
        return self._experiment.workspace.flush(timeout)

    def _check_active(self) -> None:
        if not self._st.active:
            raise RunNotActive(f"run {self.id} is {self._st.status}; it takes no more events")

    def get_children(self, recursive: bool = False, tags: str | Mapping[str, str] | None = None,
                     properties: str | Mapping[str, str] | None = None, type: str | None = None,
                     status: str | None = None) -> Iterator[Run]:
        """This run's children (with ``recursive=True`` their children too), oldest first, as :class:`Run`
        handles; filtered like ``Experiment.get_runs`` and by ``status``."""
        ws = self._experiment.workspace
        ws.flush(ws.settings.flush_timeout_s)
        infos = list(reversed(ws.reader().get_runs(self._experiment.name)))
        by_parent: dict[str, list[Any]] = {}
        for info in infos:
            parent_id = _field(info, "parent_run_id")
            if parent_id:
                by_parent.setdefault(parent_id, []).append(info)
        pending = list(by_parent.get(self.id, []))
        while pending:
            info = pending.pop(0)
            if recursive:
                pending.extend(by_parent.get(_field(info, "run_id"), []))
            if type is not None and _field(info, "kind", "interactive") != type:
                continue
            if status is not None and _field(info, "status", "Running") != status:
                continue
            run = Run._from_info(self._experiment, info)
            if _attribute_filter(run, tags, properties):
                yield run

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> Run:
        """Start a child run (``name`` is its display name)."""
        self._check_active()
        return Run._start(self._experiment, display_name=name, tags=None, properties=None, kind="child",
                          parent=self, run_id=run_id)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._st.active:
            return
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self.cancel()
        else:
            self.fail(exc)

    # -- the submitted-run context ---------------------------------------------------

    @classmethod
    def get_context(cls, workspace: Workspace | None = None, **_azure_kwargs: Any) -> Run:
        """The run of this process.

        In a submitted job (``RUNSTREAM_RUN_ID`` and ``RUNSTREAM_EXPERIMENT``
        set by the job runner; ``RUNSTREAM_PARENT_RUN_ID`` optional) a handle
        to that run, with no second RunStarted. Elsewhere a new run in an
        experiment named after the script, completed at exit (failed on an
        uncaught exception, canceled on SIGTERM). Never a silent no-op. The
        same Run is returned on every call (and in forked children).
        """
        global _context_run
        with _context_lock:
            if _context_run is not None:
                return _context_run
            ws = workspace or Workspace.default()
            run_id = os.environ.get(ENV_RUN_ID)
            if run_id:
                experiment_name = os.environ.get(ENV_EXPERIMENT)
                if not experiment_name:
                    raise ConfigurationError(f"{ENV_RUN_ID} is set but {ENV_EXPERIMENT} is not")
                experiment = Experiment(ws, experiment_name)
                run = cls._attach(experiment, run_id, parent_id=os.environ.get(ENV_PARENT_RUN_ID) or None,
                                  kind="submitted", heartbeat=True)
            else:
                experiment = Experiment(ws, _script_experiment_name())
                run = cls._start(experiment, display_name=None, tags=None, properties=None, kind="interactive")
                _install_context_finisher(run)
            _context_run = run
            return run

    # -- submitted runs --------------------------------------------------------------

    def wait_for_completion(self, show_output: bool = False, raise_on_error: bool = True,
                            **_azure_kwargs: Any) -> dict[str, Any]:
        """Block until the run ends; return its details (``get_details()``).

        ``show_output=True`` streams the job's stdout/stderr to this process's
        as it happens (a job this process submitted: live, from the capture;
        any other run: by polling its stored log). When the run ends Failed
        and ``raise_on_error`` is true, raises :class:`producers.errors.JobFailed`
        with the job's error text. Ctrl-C while waiting on a job this process
        submitted stops the job (the run ends Canceled) and re-raises.
        """
        return wait_for_completion(self, show_output=show_output, raise_on_error=raise_on_error)

    # -- reading back --------------------------------------------------------------

    def _read(self, method: str, *args: Any) -> Any:
        ws = self._experiment.workspace
        timeout = ws.settings.flush_timeout_s
        ws.flush(timeout)
        reader = ws.reader()
        emitter = ws.emitter_if_started()
        if emitter is not None:
            seq = emitter.last_seq(self.id)
            if seq:
                reader.wait_visible(self.id, emitter.writer_id, seq, timeout)
        return getattr(reader, method)(self.id, *args)

    def get_metrics(self, name: str | None = None) -> Any:
        """Metrics as Azure ML shapes them: once -> value, repeated/list -> list, row/table -> dict of columns."""
        return self._read("get_metrics", name)

    def get_status(self) -> Any:
        """The status as the store has it (Running, Completed, Failed, Canceled)."""
        return self._read("get_status")

    def get_details(self) -> Any:
        """Start/end times, status, error details, tags, properties, parent."""
        return self._read("get_details")

    def get_file_names(self) -> Any:
        """Paths of the run's uploaded files and images."""
        return self._read("get_file_names")

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Any:
        """Write uploaded file ``name`` to ``output_file_path`` (default: its base name in the working directory)."""
        target = output_file_path if output_file_path is not None else Path(name).name
        return self._read("download_file", name, target)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id and other._experiment == self._experiment

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Run(experiment={self._experiment.name!r}, id={self.id!r}, status={self.status!r})"


def _script_experiment_name() -> str:
    """The experiment of an unsubmitted ``Run.get_context()``: the ``__main__`` script's file stem."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    stem = Path(path).stem if path else "interactive"
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in stem)
    cleaned = cleaned.lstrip("_-") or "interactive"
    return check_experiment_name(cleaned[:256], 256)


def _install_context_finisher(run: Run) -> None:
    """End a get_context() run at exit: Completed, Failed on an uncaught exception, Canceled on SIGTERM."""
    previous_hook = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _uncaught.append("".join(traceback.format_exception(exc_type, exc, tb)))
        previous_hook(exc_type, exc, tb)

    sys.excepthook = hook
    owner = os.getpid()

    def finish(reason: str) -> None:
        if os.getpid() != owner or not run._st.active:
            return  # a forked child does not end its parent's run
        try:
            if reason == "sigterm":
                run._end("Canceled", None, flush=False)
            elif _uncaught:
                run._end("Failed", truncate_middle(_uncaught[-1], run._limits.max_error_details_length), flush=False)
            else:
                run._end("Completed", None, flush=False)
        except RunNotActive:
            pass

    lifecycle.add_exit_callback(finish)


def _send_upload(st: RunState, upload: Upload) -> None:
    """On the upload thread: hash the file, then queue its chunks back to back; failures are logged."""
    try:
        upload.measure()
        for index, data in upload.chunks():
            st.emitter.enqueue(
                st, FileChunk,
                {"path": upload.path, "upload_id": upload.upload_id, "chunk_index": index,
                 "chunk_count": upload.chunk_count, "total_size": upload.size, "sha256": upload.sha256,
                 "content_type": upload.content_type, "data": data},
                size=len(data) + 256, block=True, ended_ok=True,
            )
    except (InvalidLogCall, RunNotActive, OSError) as exc:
        _log.warning("run %s: file %s not uploaded: %s", st.run_id, upload.path, exc)
    except Exception:  # a bug must not kill the thread later uploads depend on
        _log.exception("run %s: file %s not uploaded", st.run_id, upload.path)
    finally:
        upload.close()
