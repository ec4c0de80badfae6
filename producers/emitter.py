"""The emitter: buffers events in memory on the caller's thread, encodes and sends them on its own.

``run.log(name, float)`` costs one short lock and four ``array.append``\\s:
no I/O, no encoding, no allocation beyond the arrays' growth. Everything else
happens on one daemon thread per emitter:

1. every ``linger_ms`` (or at once when a run has ``batch_points`` buffered, or
   on ``flush``) it swaps the buffers out under the lock;
2. builds the typed records in each run's order — lifecycle, tags, lists,
   rows, files... as they were called, scalar points as columnar
   :class:`~schemas.ScalarBatch`\\es between them — assigns ``seq`` (per writer,
   from 1) and encodes them with :func:`schemas.encode`;
3. hands the bytes to the transport (key = run id). A transport that cannot
   take a message keeps it queued here, in order, and the thread retries.

Memory is bounded (``max_buffer_bytes``: raw buffers + encoded messages waiting
+ what the transport holds unacknowledged). When the bound is hit the caller
waits for room, or gets :class:`BufferFull` with ``on_buffer_full="raise"``;
nothing is ever dropped silently.

Buffer layout, per run and swap window: one open ``_Segment`` of parallel arrays
``idx`` (int32 name index), ``steps`` (int64), ``times`` (float64 seconds from
the clock) and ``values`` (float64) — 28 bytes a point — and the few string
values beside them. A non-scalar event seals the run's open segment, so points
logged after it land in a later batch: per-run order holds for every event
(captured log lines are a second stream, in order among themselves).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from array import array
from collections import Counter, deque
from typing import Any, Callable, Iterable, Literal

from schemas.codec import encode
from schemas.errors import EncodeError
from schemas.limits import RunLimits
from schemas.packing import split_planes
from schemas.records import Event, Heartbeat, LogBatch, LogLine, ScalarBatch

from . import lifecycle
from .errors import BufferFull, InvalidLogCall, InvalidValueType, RunNotActive
from .transport import EventTransport
from .uploads import Uploader
from .values import check_name

__all__ = ["Emitter", "RunState", "POINT_BYTES", "MAX_MESSAGE_BYTES", "new_writer_id"]

_log = logging.getLogger("runstream.emitter")

POINT_BYTES = 28
"""Buffered bytes of one numeric point: int32 name index, int64 step, float64 time, float64 value."""

MAX_MESSAGE_BYTES = 768 * 1024
"""Target upper bound of one encoded message: Kafka's default limit is 1 MiB."""

_EVENT_OVERHEAD = 128
_TEXT_OVERHEAD = 24
_RAISE_GRACE_S = 1.0

TransportFactory = Callable[[str], EventTransport]
"""Builds a transport for a writer id; called again in a forked child (new writer id)."""


def new_writer_id() -> str:
    """A fresh writer id: one per emitter and per forked process."""
    return uuid.uuid4().hex


class _Segment:
    """Scalar points of one run logged in one swap window, columnar."""

    __slots__ = ("st", "idx", "steps", "times", "values", "texts", "cap")

    def __init__(self, st: RunState, cap: int) -> None:
        self.st = st
        self.idx = array("i")
        self.steps = array("q")
        self.times = array("d")
        self.values = array("d")
        self.texts: list[tuple[int, str]] | None = None
        self.cap = cap


class _Pending:
    """One non-scalar event waiting for its seq: the record class and its fields past the envelope."""

    __slots__ = ("st", "cls", "fields", "created_ms", "size")

    def __init__(self, st: RunState, cls: type[Event], fields: dict[str, Any], created_ms: int, size: int) -> None:
        self.st = st
        self.cls = cls
        self.fields = fields
        self.created_ms = created_ms
        self.size = size


class _Logs:
    """Captured log lines of one run in one swap window."""

    __slots__ = ("st", "lines", "size")

    def __init__(self, st: RunState) -> None:
        self.st = st
        self.lines: list[LogLine] = []
        self.size = 0


class _Waiter:
    __slots__ = ("done", "ok", "deadline")

    def __init__(self, deadline: float | None) -> None:
        self.done = threading.Event()
        self.ok = False
        self.deadline = deadline


class RunState:
    """Everything this process knows about one run; shared by every ``Run`` handle of that id.

    The scalar hot path (:meth:`add_point`) lives here, next to the buffers.
    Fields besides the buffers (kinds, tags, properties) serve the ``Run``
    layer's call-time checks; they change under ``lock``.
    """

    __slots__ = (
        "__weakref__",
        "run_id",
        "experiment",
        "emitter",
        "lock",
        "clock",
        "names",
        "name_list",
        "desc_list",
        "seg",
        "logs",
        "active",
        "status",
        "heartbeat",
        "owner_pid",
        "kinds",
        "tags",
        "properties",
        "scalar_rows",
        "other_rows",
        "scalar_total",
        "warned",
    )

    def __init__(self, emitter: Emitter, run_id: str, experiment: str) -> None:
        self.run_id = run_id
        self.experiment = experiment
        self.emitter = emitter
        self.lock = emitter._lock
        self.clock = emitter.clock
        self.names: dict[str, list[int]] = {}  # scalar name -> [index in name_list, next default step]
        self.name_list: list[str] = []
        self.desc_list: list[str] = []
        self.seg: _Segment | None = None
        self.logs: _Logs | None = None
        self.active = True
        self.status = "Running"
        self.heartbeat = False
        self.owner_pid = os.getpid()
        self.kinds: dict[str, str] = {}  # metric name -> scalar | list | row | table | image
        self.tags: dict[str, str | None] = {}
        self.properties: dict[str, str] = {}
        self.scalar_rows: Counter[int] = Counter()  # counted on the emitter thread
        self.other_rows: dict[str, int] = {}
        self.scalar_total = 0
        self.warned: set[str] = set()

    def add_point(self, name: str, value: float, text: str | None, description: str, step: int | None) -> None:
        """Buffer one scalar point (``value`` already a float; NaN with ``text`` for a string value).

        The fast path (a known name, an open segment with room, default step,
        no description, a number) is a copy of the one in ``Run.log``, which
        inlines it to save a call.
        """
        if text is None and step is None and not description:
            lock = self.lock
            lock.acquire()
            try:
                entry = self.names.get(name)
                seg = self.seg
                if entry is not None and seg is not None:
                    idx = seg.idx
                    if len(idx) < seg.cap:
                        s = entry[1]
                        entry[1] = s + 1
                        idx.append(entry[0])
                        seg.steps.append(s)
                        seg.times.append(self.clock())
                        seg.values.append(value)
                        return
            finally:
                lock.release()
        self.emitter._add_point_slow(self, name, value, text, description, step)


class Emitter:
    """Buffers events of any number of runs and delivers them through one transport, in per-run order.

    ``transport`` is an instance or a factory ``writer_id -> transport``; only
    a factory gives a forked child a transport of its own. ``clock`` returns
    epoch seconds (``time.time``); tests inject their own.
    """

    def __init__(
        self,
        transport: EventTransport | TransportFactory,
        *,
        topic: str,
        limits: RunLimits | None = None,
        linger_ms: int = 50,
        batch_points: int = 16_384,
        max_buffer_bytes: int = 64 * 1024 * 1024,
        on_buffer_full: Literal["block", "raise"] = "block",
        heartbeat_interval_s: float = 30.0,
        exit_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        install_signal_handlers: bool = True,
    ) -> None:
        if isinstance(transport, EventTransport):
            self._factory: TransportFactory | None = None
            self._transport: EventTransport | None = transport
        else:
            self._factory = transport
            self._transport = None
        self.topic = topic
        self.limits = limits or RunLimits()
        self.clock = clock
        self._linger = linger_ms / 1000.0
        self._batch_points = batch_points
        self._max_bytes = max_buffer_bytes
        self._on_full = on_buffer_full
        self._heartbeat_s = heartbeat_interval_s
        self.exit_timeout_s = exit_timeout_s
        self._host = socket.gethostname()
        self._closed = False
        self._states: weakref.WeakSet[RunState] = weakref.WeakSet()
        self._reset_process_state()
        lifecycle.register(self, install_signal_handlers=install_signal_handlers)

    def _reset_process_state(self) -> None:
        """State that belongs to one process: rebuilt in a forked child."""
        # A plain Lock: cheaper than an RLock on the hot path. Nothing re-enters
        # it, and nothing logs or calls user code while holding it.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self.writer_id = new_writer_id()
        self._pid = os.getpid()
        self.uploads = Uploader()  # file uploads are hashed and queued on a thread of their own
        self._pending: list[_Segment | _Pending | _Logs] = []
        self._open: list[_Segment] = []
        self._pending_bytes = 0
        self._inflight_bytes = 0
        self._outq: deque[tuple[bytes, bytes]] = deque()
        self._outq_bytes = 0
        self._waiters: list[_Waiter] = []
        self._kicked = False
        self._first_at = 0.0
        self._closing = False
        self._close_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._last_seq: dict[str, int] = {}
        self._heartbeats: dict[str, RunState] = {}
        self._next_heartbeat = time.monotonic() + self._heartbeat_s
        self._full_warned = False
        self._full_report: tuple[int, bool] | None = None
        self._transport_warned = False
        self.messages_sent = 0

    # -- public ----------------------------------------------------------------

    def last_seq(self, run_id: str) -> int:
        """The seq of the last message built for ``run_id`` by this writer (0 if none); call after ``flush``."""
        return self._last_seq.get(run_id, 0)

    @property
    def seq(self) -> int:
        """The last seq this writer assigned."""
        return self._seq

    def open_run(self, run_id: str, experiment: str, *, heartbeat: bool) -> RunState:
        """A buffer for one run; ``heartbeat`` makes this process beat for it while it is active."""
        st = RunState(self, run_id, experiment)
        with self._lock:
            self._states.add(st)
            if heartbeat:
                if not self._heartbeats:
                    self._next_heartbeat = time.monotonic() + self._heartbeat_s
                st.heartbeat = True
                self._heartbeats[run_id] = st
        return st

    def enqueue(self, st: RunState, cls: type[Event], fields: dict[str, Any], *, size: int = _EVENT_OVERHEAD,
                prepare: Callable[[], str | None] | None = None, end: str | None = None,
                block: bool = False, ended_ok: bool = False) -> None:
        """Queue one event for ``st`` after everything logged before it.

        ``prepare`` runs under the lock once there is room, just before the
        event is queued: it checks and records per-run state (tag counts,
        metric kinds) and may raise, in which case nothing is queued; it may
        return a warning to log. ``end`` (a final status) marks the run
        inactive atomically with the event. ``block`` waits for room even with
        ``on_buffer_full="raise"`` (file chunks: a half-sent upload is worse).
        ``ended_ok`` lets the event reach a run that has ended (metrics, tags,
        properties, files: as in Azure ML and MLflow, an ended run takes them).
        """
        self.enqueue_many(st, [(cls, fields, size)], prepare=prepare, end=end, block=block, ended_ok=ended_ok)

    def enqueue_many(self, st: RunState, events: list[tuple[type[Event], dict[str, Any], int]], *,
                     prepare: Callable[[], str | None] | None = None, end: str | None = None,
                     block: bool = False, ended_ok: bool = False) -> None:
        """Queue several events for ``st`` back to back (nothing of another call between them)."""
        created_ms = int(self.clock() * 1000)
        total = sum(size for _, _, size in events)
        warn = None
        with self._lock:
            while True:
                self._check_active_locked(st, ended_ok=ended_ok and end is None)
                if not self._wait_for_room_locked(st, total, block=block):
                    break
            if prepare is not None:
                warn = prepare()
            st.seg = None
            st.logs = None
            for cls, fields, size in events:
                self._append_locked(_Pending(st, cls, fields, created_ms, size + _EVENT_OVERHEAD))
            if end is not None:
                st.active = False
                st.status = end
                self._heartbeats.pop(st.run_id, None)
        if warn:
            _log.warning(warn)

    def add_log_lines(self, st: RunState, lines: Iterable[LogLine]) -> None:
        """Queue captured output lines for ``st`` (coalesced into one LogBatch per swap window)."""
        lines = list(lines)
        if not lines:
            return
        size = _lines_size(lines)
        with self._lock:
            while True:
                self._check_active_locked(st)
                if not self._wait_for_room_locked(st, size, block=False):
                    break
            self._add_lines_locked(st, lines, size)

    def offer_log_lines(self, st: RunState, lines: list[LogLine]) -> bool:
        """Queue ``lines`` if they fit in the memory bound now; False (nothing queued) if not. Never waits.

        For callers that must not stall, such as a ``logging`` handler: they
        drop what does not fit and say so once there is room again.
        """
        if not lines:
            return True
        size = _lines_size(lines)
        with self._lock:
            self._check_active_locked(st)
            if self._used_locked() + size > self._max_bytes:
                self._kicked = True
                self._work.notify()
                return False
            self._add_lines_locked(st, lines, size)
        return True

    def _add_lines_locked(self, st: RunState, lines: list[LogLine], size: int) -> None:
        item = st.logs
        if item is None:
            item = _Logs(st)
            st.logs = item
            self._append_locked(item)
        item.lines.extend(lines)
        item.size += size
        self._pending_bytes += size

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is handed to the transport and the transport flushed.

        True when delivered (Kafka acknowledged, or durably in a spool);
        False on timeout. Safe from any thread but the emitter's own.
        """
        if threading.current_thread() is self._thread:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.uploads.wait(None, timeout):
            return False
        with self._lock:
            if self._closed:
                return not self._pending and not self._outq
            if not self._pending and not self._outq and self._thread is None and self._transport is None:
                return True
            waiter = _Waiter(deadline)
            self._waiters.append(waiter)
            self._kicked = True
            self._ensure_thread_locked()
            self._work.notify()
        if not waiter.done.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
            return False
        return waiter.ok

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is buffered (up to ``timeout``), stop the thread, close the transport. Idempotent."""
        if self._closed:
            return
        timeout = self.exit_timeout_s if timeout is None else timeout
        started = time.monotonic()
        if not self.uploads.wait(None, timeout):
            _log.error("runstream: file uploads did not finish within %.1fs; the rest are not sent", timeout)
        timeout = max(0.0, timeout - (time.monotonic() - started))
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            has_work = bool(self._pending or self._outq)
            if has_work:
                self._ensure_thread_locked()
            self._kicked = True
            self._work.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout + 1.0)
            if thread.is_alive():
                _log.error("runstream: the emitter did not finish within %.1fs; undelivered events are lost", timeout)
                return
        if thread is None:
            self._close_transport()
        lifecycle.unregister(self)

    def buffered_bytes(self) -> int:
        """Bytes held in memory now: raw buffers, encoded messages waiting, transport's unacknowledged."""
        with self._lock:
            return self._used_locked()

    # -- caller-side slow paths (under the lock) -------------------------------

    def _check_active_locked(self, st: RunState, *, ended_ok: bool = False) -> None:
        if not st.active and not ended_ok:
            raise RunNotActive(f"run {st.run_id} is {st.status}; it takes no more events of this kind")
        if self._closed:
            raise RunNotActive(f"run {st.run_id}: the workspace was closed")

    def _add_point_slow(self, st: RunState, name: str, value: float, text: str | None, description: str,
                        step: int | None) -> None:
        # Every check that can fail comes before anything changes: nothing is logged half-way.
        check_name(name, self.limits.max_name_length)
        if type(description) is not str:
            if description is not None:
                raise InvalidValueType(f"description must be a str, got {type(description).__name__}")
            description = ""
        warn: str | None = None
        with self._lock:
            while True:
                self._check_active_locked(st, ended_ok=True)  # an ended run takes metrics
                seg = st.seg
                if seg is not None and len(seg.idx) < seg.cap:
                    break
                if seg is not None:
                    # Full: it becomes one message; kick the thread instead of waiting for the linger.
                    st.seg = None
                    self._kicked = True
                    self._work.notify()
                if self._wait_for_room_locked(st, 0, block=False):
                    continue  # waited: the world may have changed
                seg = _Segment(st, self._batch_points)
                st.seg = seg
                self._open.append(seg)
                self._append_locked(seg)
                break
            entry = st.names.get(name)
            if entry is None:
                kind = st.kinds.get(name)
                if kind is not None and kind != "scalar":
                    raise InvalidLogCall(f"metric {name!r} was logged as {kind}; a name keeps one kind")
                entry = [len(st.name_list), 0]
                st.name_list.append(name)
                st.desc_list.append(description or "")
                st.names[name] = entry
                if kind is None:
                    st.kinds[name] = "scalar"
                    warn = self._count_name_locked(st)
            elif description and st.desc_list[entry[0]] != description:
                st.desc_list[entry[0]] = description
            if step is None:
                step = entry[1]
            entry[1] = step + 1
            position = len(seg.idx)
            seg.idx.append(entry[0])
            seg.steps.append(step)
            seg.times.append(st.clock())
            seg.values.append(value)
            if text is not None:
                if seg.texts is None:
                    seg.texts = []
                seg.texts.append((position, text))
                self._pending_bytes += len(text) + _TEXT_OVERHEAD
        if warn:
            _log.warning(warn)

    def _count_name_locked(self, st: RunState) -> str | None:
        """A new metric name: the per-run name limit's warning text the first time it is crossed."""
        limit = self.limits.max_metric_names
        if len(st.kinds) > limit and "names" not in st.warned:
            st.warned.add("names")
            return (
                f"run {st.run_id} has more than {limit} metric names; the ingest side keeps only the first "
                f"{limit}. Log one row metric with the varying part as a column instead of formatting it into names."
            )
        return None

    def register_metric_locked(self, st: RunState, name: str, kind: str, rows: int) -> str | None:
        """Record a non-scalar metric name's kind and rows; raises on a kind clash; returns a warning text."""
        known = st.kinds.get(name)
        if known is not None and known != kind:
            raise InvalidLogCall(f"metric {name!r} was logged as {known}; a name keeps one kind")
        warn = None
        if known is None:
            st.kinds[name] = kind
            warn = self._count_name_locked(st)
        total = st.other_rows.get(name, 0) + rows
        st.other_rows[name] = total
        limit = self.limits.max_rows_per_metric
        if total > limit and ("rows:" + name) not in st.warned:
            st.warned.add("rows:" + name)
            warn = f"run {st.run_id}: metric {name!r} has more than {limit} rows; the ingest side keeps the first {limit}"
        return warn

    def _append_locked(self, item: _Segment | _Pending | _Logs) -> None:
        """Queue an item; segments and log items account their bytes as they grow."""
        if not self._pending:
            self._first_at = time.monotonic()
            self._ensure_thread_locked()
            self._work.notify()
        self._pending.append(item)
        if type(item) is _Pending:
            self._pending_bytes += item.size

    def _used_locked(self) -> int:
        open_points = 0
        for seg in self._open:
            open_points += len(seg.idx)
        transport = self._transport
        held = 0
        if transport is not None:
            buffered = getattr(transport, "buffered_bytes", None)
            if buffered is not None:
                held = buffered()
        return self._pending_bytes + open_points * POINT_BYTES + self._inflight_bytes + self._outq_bytes + held

    def _wait_for_room_locked(self, st: RunState, incoming: int, *, block: bool) -> bool:
        """Wait while the memory bound is hit; True if it waited (callers re-check their state)."""
        if self._used_locked() + incoming <= self._max_bytes:
            return False
        if threading.current_thread() is self._thread:
            return False  # never wait for ourselves
        raise_after = None if block or self._on_full == "block" else time.monotonic() + _RAISE_GRACE_S
        if not self._full_warned:
            self._full_warned = True
            self._full_report = (self._used_locked(), raise_after is None)
        while self._used_locked() + incoming > self._max_bytes:
            if self._closed:
                raise RunNotActive("the workspace was closed")
            if not self._pending and not self._outq and self._inflight_bytes == 0 and incoming > self._max_bytes:
                break  # one event larger than the whole bound: let it through alone
            self._kicked = True
            self._work.notify()
            if raise_after is not None and time.monotonic() >= raise_after:
                raise BufferFull(
                    f"{self._used_locked()} bytes buffered, bound {self._max_bytes}, and the transport is not "
                    "draining; nothing of this call was logged"
                )
            self._space.wait(0.25)
        self._full_warned = False
        return True

    def _ensure_thread_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            if self._closing and not (self._pending or self._outq or self._waiters):
                return
            self._thread = threading.Thread(target=self._run, name="runstream-emitter", daemon=True)
            self._thread.start()

    # -- the emitter thread ----------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        carried: list[_Waiter] = []
        while True:
            with self._lock:
                items, waiters, closing = self._wait_and_swap_locked(backoff)
            waiters = carried + waiters
            if items:
                try:
                    self._build(items)
                except Exception:  # a bug must not kill the thread every later event depends on
                    _log.exception("runstream: building %d queued events failed; they are lost", len(items))
            try:
                self._beat_if_due()
            except Exception:
                _log.exception("runstream: heartbeat failed")
            with self._lock:
                self._inflight_bytes = 0
                self._space.notify_all()
                report, self._full_report = self._full_report, None
            if report is not None:
                # Logged here, never under the lock: a logging handler may log to a run.
                _log.warning(
                    "runstream: %d bytes buffered (bound %d); callers %s until the transport drains them",
                    report[0], self._max_bytes, "wait" if report[1] else "get BufferFull",
                )
            delivered = self._deliver()
            backoff = 0.0 if delivered else min(max(backoff * 2, 0.1), 2.0)
            carried = []
            if waiters:
                if delivered:
                    self._finish_waiters(waiters)
                else:
                    carried = [w for w in waiters if not w.done.is_set()]
            if closing:
                with self._lock:
                    more = bool(self._pending)
                if more:
                    continue
                if not delivered and self._outq:
                    if time.monotonic() < self._close_deadline:
                        continue
                    _log.error(
                        "runstream: %d messages could not be delivered before exit (transport failing)",
                        len(self._outq),
                    )
                for waiter in carried:
                    waiter.done.set()
                self._close_transport()
                return

    def _wait_and_swap_locked(self, backoff: float) -> tuple[list[_Segment | _Pending | _Logs], list[_Waiter], bool]:
        work = self._work
        if backoff:
            work.wait(backoff)
        while not (self._pending or self._kicked or self._closing or self._waiters or self._outq):
            due = self._next_heartbeat - time.monotonic()
            if due <= 0 and self._heartbeats:
                break
            work.wait(max(due, 0.05) if self._heartbeats else None)
        if self._pending and not (self._kicked or self._closing):
            deadline = self._first_at + self._linger
            while not (self._kicked or self._closing):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                work.wait(remaining)
        self._kicked = False
        items = self._pending
        self._pending = []
        opened = self._open
        self._open = []
        for seg in opened:
            if seg.st.seg is seg:
                seg.st.seg = None
            self._pending_bytes += len(seg.idx) * POINT_BYTES
        for item in items:
            if type(item) is _Logs and item.st.logs is item:
                item.st.logs = None
        self._inflight_bytes = self._pending_bytes
        self._pending_bytes = 0
        waiters = self._waiters
        self._waiters = []
        return items, waiters, self._closing

    def _build(self, items: list[_Segment | _Pending | _Logs]) -> None:
        out: list[tuple[bytes, bytes]] = []
        now_ms = int(self.clock() * 1000)
        for item in items:
            st = item.st
            if type(item) is _Segment:
                if not item.idx:
                    continue
                for fields in _scalar_batches(item, self.limits, self):
                    self._encode_into(out, st, ScalarBatch, fields, now_ms)
            elif type(item) is _Pending:
                self._encode_into(out, st, item.cls, item.fields, item.created_ms)
            elif type(item) is _Logs:
                for lines in _split_lines(item.lines):
                    self._encode_into(out, st, LogBatch, {"lines": lines}, now_ms)
        if out:
            with self._lock:
                for key, value in out:
                    self._outq.append((key, value))
                    self._outq_bytes += len(key) + len(value)

    def _encode_into(self, out: list[tuple[bytes, bytes]], st: RunState, cls: type[Event], fields: dict[str, Any],
                     created_ms: int) -> None:
        seq = self._seq + 1
        try:
            record = cls(writer_id=self.writer_id, seq=seq, run_id=st.run_id, experiment=st.experiment,
                         created_ms=created_ms, **fields)
            data = encode(record)
        except (EncodeError, TypeError, ValueError) as exc:
            # Call-time checks make this unreachable; if it happens, say so loudly.
            _log.error("runstream: could not encode a %s for run %s, event dropped: %s", cls.__name__, st.run_id, exc)
            return
        self._seq = seq
        self._last_seq[st.run_id] = seq
        out.append((st.run_id.encode("utf-8"), data))

    def _beat_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_s
        with self._lock:
            runs = [st for st in self._heartbeats.values() if st.active]
        if not runs:
            return
        out: list[tuple[bytes, bytes]] = []
        created_ms = int(self.clock() * 1000)
        interval_ms = int(self._heartbeat_s * 1000)
        for st in runs:
            self._encode_into(out, st, Heartbeat, {"interval_ms": interval_ms}, created_ms)
        with self._lock:
            for key, value in out:
                self._outq.append((key, value))
                self._outq_bytes += len(key) + len(value)

    def _get_transport(self) -> EventTransport:
        if self._transport is None:
            assert self._factory is not None
            self._transport = self._factory(self.writer_id)
        return self._transport

    def _deliver(self) -> bool:
        """Send queued messages in order; False when the transport refused one (it stays queued)."""
        if not self._outq:
            return True
        try:
            transport = self._get_transport()
        except Exception as exc:
            self._transport_failed(exc)
            return False
        outq = self._outq
        topic = self.topic
        while outq:
            key, value = outq[0]
            try:
                transport.send(topic, key, value)
            except Exception as exc:  # TransportError, or a transport's bug: keep the message, retry
                self._transport_failed(exc)
                return False
            outq.popleft()
            self.messages_sent += 1
            with self._lock:
                self._outq_bytes -= len(key) + len(value)
        if self._transport_warned:
            self._transport_warned = False
            _log.warning("runstream: the transport takes events again")
        with self._lock:
            self._space.notify_all()
        return True

    def _transport_failed(self, exc: BaseException) -> None:
        if not self._transport_warned:
            self._transport_warned = True
            _log.warning("runstream: the transport refused events (%s); %d queued, retrying", exc, len(self._outq))

    def _finish_waiters(self, waiters: list[_Waiter]) -> None:
        live = [w for w in waiters if not w.done.is_set()]
        if not live:
            return
        deadlines = [w.deadline for w in live]
        timeout = None if any(d is None for d in deadlines) else max(0.0, max(d for d in deadlines if d) - time.monotonic())
        try:
            ok = self._get_transport().flush(timeout)
        except Exception as exc:
            _log.warning("runstream: transport flush failed: %s", exc)
            ok = False
        for waiter in live:
            waiter.ok = ok
            waiter.done.set()

    def _close_transport(self) -> None:
        transport = self._transport
        if transport is None:
            return
        try:
            transport.close()
        except Exception as exc:  # a failing close must not hide what happened before it
            _log.warning("runstream: closing the transport failed: %s", exc)

    # -- fork --------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_parent(self) -> None:
        self._lock.release()

    def _after_fork_child(self) -> None:
        """A forked child: a new writer with empty buffers; the parent's buffered points stay the parent's."""
        if self._factory is not None:
            # Never touch the parent's producer or spool segment from here: its
            # sockets and locks are shared with the parent.
            lifecycle.keep_alive(self._transport)
            self._transport = None
        self._reset_process_state()
        for st in list(self._states):
            st.lock = self._lock
            st.seg = None
            st.logs = None
            st.heartbeat = False


_PACKED_POINT_BYTES = 28
"""Wire bytes of one packed point: int32 name index, int64 step, float64 time, float64 value."""

_NAMES_TABLE_BYTES = 64 * 1024
"""A run's whole names table goes in every batch up to this size; past it, only the names a batch uses."""


def _scalar_batches(seg: _Segment, limits: RunLimits, emitter: Emitter) -> Iterable[dict[str, Any]]:
    """Packed ScalarBatch fields for one segment, split so every message stays under MAX_MESSAGE_BYTES.

    The common case touches no point in Python: each column is one
    ``array.tobytes`` (the buffer layout is the wire layout), steps and times
    byte-stream split (:mod:`schemas.packing`), and the names table is the
    run's. Only a run whose names and descriptions are too large to repeat
    in every message (far past the name limit) pays a per-point remap.
    """
    st = seg.st
    n = len(seg.idx)
    # Read without the lock: a name being added may be in one list and not yet the other. Every
    # point of this (swapped-out) segment names an index both lists had when it was logged.
    names_all = list(st.name_list)
    descs_all = list(st.desc_list)
    del names_all[len(descs_all):], descs_all[len(names_all):]
    counts = _count_rows(st, seg.idx, n, limits)
    idx = seg.idx
    if (sum(map(len, names_all)) + sum(map(len, descs_all))) * 4 <= _NAMES_TABLE_BYTES:
        names = names_all
        descs = descs_all
    else:
        used = sorted(counts)
        remap = {old: new for new, old in enumerate(used)}
        names = [names_all[i] for i in used]
        descs = [descs_all[i] for i in used]
        idx = array("i", map(remap.__getitem__, idx))
    texts = seg.texts or []
    names_cost = (sum(map(len, names)) + sum(map(len, descs))) * 4 + len(names) * 16
    if not texts and n * _PACKED_POINT_BYTES + names_cost <= MAX_MESSAGE_BYTES:
        yield {
            "names": names, "descriptions": descs, "text_pos": [], "text_values": [],
            "packed_name_idx": idx.tobytes(), "packed_steps": split_planes(seg.steps.tobytes(), 8),
            "packed_times": split_planes(seg.times.tobytes(), 8),
            "packed_values": seg.values.tobytes(),
        }
        return
    # Rare: a batch larger than a message (batch_points raised), or long strings (up to 255
    # characters, 4 bytes each in UTF-8) pushing one over the limit.
    start = 0
    t = 0
    while start < n:
        budget = MAX_MESSAGE_BYTES - names_cost
        end = start
        pos: list[int] = []
        vals: list[str] = []
        while end < n and budget > 0:
            if t < len(texts) and texts[t][0] == end:
                cost = _PACKED_POINT_BYTES + 4 * len(texts[t][1]) + 8
                if end > start and cost > budget:
                    break
                pos.append(end - start)
                vals.append(texts[t][1])
                t += 1
                budget -= cost
                end += 1
            else:
                # Up to the next text point (or the budget) at once.
                stop = texts[t][0] if t < len(texts) else n
                take = max(1, min(stop - end, budget // _PACKED_POINT_BYTES))
                budget -= take * _PACKED_POINT_BYTES
                end += take
        yield {
            "names": names, "descriptions": descs, "text_pos": pos, "text_values": vals,
            "packed_name_idx": idx[start:end].tobytes(),
            "packed_steps": split_planes(seg.steps[start:end].tobytes(), 8),
            "packed_times": split_planes(seg.times[start:end].tobytes(), 8),
            "packed_values": seg.values[start:end].tobytes(),
        }
        start = end


def _count_rows(st: RunState, idx: array[int], n: int, limits: RunLimits) -> Counter[int]:
    """This segment's points per name index; warns once per name past the per-name row limit.

    Counted without a Python object per point while the run has at most 256
    names (always, within the name limit): the low byte of each little-endian
    int32 index, then one C-speed ``bytes.count`` per name.
    """
    names = len(st.name_list)
    if names <= 256 and sys.byteorder == "little":
        low = idx.tobytes()[::4]
        counts: Counter[int] = Counter()
        for i in range(names):
            c = low.count(_BYTE[i])
            if c:
                counts[i] = c
    else:
        counts = Counter(idx)
    total = st.scalar_rows
    total.update(counts)
    st.scalar_total += n
    limit = limits.max_rows_per_metric
    if st.scalar_total <= limit:
        return counts  # no name can be over the limit yet
    for i in counts:
        key = f"rows:{i}"
        if total[i] > limit and key not in st.warned:
            st.warned.add(key)
            _log.warning(
                "run %s: metric %r has more than %d rows; the ingest side keeps the first %d",
                st.run_id, st.name_list[i], limit, limit,
            )
    return counts


_BYTE = tuple(bytes((i,)) for i in range(256))


def _lines_size(lines: list[LogLine]) -> int:
    return sum(len(line.message) + len(line.exc_text or "") + len(line.logger) + 32 for line in lines)


def _split_lines(lines: list[LogLine]) -> Iterable[list[LogLine]]:
    chunk: list[LogLine] = []
    size = 0
    for line in lines:
        cost = 4 * (len(line.message) + len(line.logger) + len(line.exc_text or "")) + 32
        if chunk and size + cost > MAX_MESSAGE_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += cost
    if chunk:
        yield chunk

