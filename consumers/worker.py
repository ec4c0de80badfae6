"""The ingest loop: poll -> decode -> validate/limit -> rows -> flush -> commit.

One :class:`Worker` drives one source into one sink, single-threaded.

Exactly once, end to end:

1. Offsets (Kafka) or the spool checkpoint are committed only after every
   table of the batch, then ``writer_progress``, was accepted by the sink.
2. A crash anywhere before the commit re-delivers the batch; every row carries
   its message's ``(writer_id, seq[, idx])`` so ``ReplacingMergeTree`` collapses
   the repeats, and readers deduplicate until merges happen.

Sink outages: the batch is retried with capped exponential backoff while the
source is paused (nothing more is read, so memory stays bounded); once the sink
takes it, the worker commits and resumes. Tables already written in a failed
attempt are not written again.

If the server keeps refusing a table's rows as invalid (a non-retriable error,
:data:`Worker.POISON_STRIKES` times), they are written message by message and the
messages it refuses are dead-lettered (``sink_rejected``): no message can stall a
partition.

A rebalance (Kafka): the source calls :meth:`Worker.on_revoke` on this
thread, before the member rejoins (see :class:`~consumers.source.KafkaSource`).
The worker flushes and commits within its rebalance budget (below the session
timeout); if the sink cannot take the batch in time, the batch is dropped
uncommitted and read again by whoever owns each partition next — it may read
again what was already written (the rows collapse), never skip what was not.
Shutdown (:meth:`Worker.stop`) flushes and commits within
``shutdown_timeout_s``, or exits without committing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Mapping, Protocol, Sequence

from prometheus_client import CollectorRegistry

from schemas.backoff import Backoff
from schemas.errors import DecodeError
from schemas.records import FINAL_STATUSES, Event, Heartbeat, RunStarted, RunStatusChanged
from schemas.settings import IngestSettings
from store.errors import StoreError

from .decode import check_key, decode_message
from .dlq import DeadLetter, DeadLetters
from .errors import DeadLetterError, InvalidEvent, SourceError
from .limits import RunLimiter
from .message import RawMessage
from .metrics import IngestMetrics
from .rows import RowBuffer, group_rejections
from .source import Source
from .validate import WHOLE_EVENT, validate

__all__ = ["EventSinkLike", "Worker"]

log = logging.getLogger("runstream.ingest")


class EventSinkLike(Protocol):
    """What the worker needs of ``store.base.EventSink``."""

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None: ...


def _key_text(message: RawMessage) -> str:
    if not message.key:
        return ""
    return message.key.decode("utf-8", "replace")[:256]


class Worker:
    """Moves messages from ``source`` to ``sink`` exactly once (see the module docstring)."""

    def __init__(
        self,
        *,
        source: Source,
        sink: EventSinkLike,
        limiter: RunLimiter,
        dead_letters: DeadLetters,
        config: IngestSettings,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.sink = sink
        self.limiter = limiter
        self.dead_letters = dead_letters
        self.config = config
        self.metrics = metrics if metrics is not None else IngestMetrics(CollectorRegistry())
        self._clock = clock
        self._monotonic = monotonic
        self._buffer = RowBuffer()
        self._letters: list[DeadLetter] = []
        self._polled = 0  # messages handed out by the source since the last commit
        self._polled_bytes = 0
        self._messages: list[RawMessage] = []  # of the current batch; row owners index into it
        self._strikes: dict[str, int] = {}  # table -> consecutive non-retriable failures
        self._isolated: set[tuple[str, int]] = set()  # (table, owner) written, or refused (in _refused)
        self._refused: list[DeadLetter] = []  # messages the server refused, one by one, in this batch
        self._refused_sent = 0  # of _refused, how many are in the dead letters
        self._refused_recorded = 0  # ... and how many are in rejected_events
        self._written: set[str] = set()  # tables of the current batch already accepted
        self._letters_sent = False
        self._first_buffered: float | None = None
        self._stop = threading.Event()
        self._stop_deadline = float("inf")
        self._flushing = False
        self._abandon = False
        self._abandon_at = float("inf")  # a rebalance waits: the current flush must end by then
        self._revoked = False  # a rebalance was announced during the current flush
        # Time a flush may take while a rebalance waits for this member (below the session timeout).
        self._rebalance_budget_s = config.rebalance_flush_timeout_s
        self._paused = False
        self._active: dict[str, int] = {}  # run id -> created_ms of its latest event (not ended)
        self.committed_messages = 0
        """Messages committed since start (progress reports, tests)."""

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to flush, commit and return (signal-handler safe)."""
        if not self._stop.is_set():
            self._stop_deadline = self._monotonic() + self.config.shutdown_timeout_s
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def buffered_rows(self) -> int:
        return self._buffer.rows

    def run(self) -> None:
        """Poll until :meth:`stop`, then flush and commit what is buffered."""
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def shutdown(self) -> bool:
        """Final flush and commit within the shutdown deadline; True when nothing was left uncommitted."""
        if self._stop_deadline == float("inf"):
            self._stop_deadline = self._monotonic() + self.config.shutdown_timeout_s
        ok = self.flush(deadline=self._stop_deadline)
        if not ok:
            log.warning("exiting with %d buffered rows uncommitted; they will be read again on restart",
                        self._buffer.rows)
        return ok

    def step(self) -> int:
        """One poll, and a flush when the batch is full or old enough; returns the messages polled."""
        if self._due():
            self.flush()
            if self._stop.is_set():
                return 0
        timeout = self.config.flush_interval_s
        if self._first_buffered is not None:
            timeout = max(0.0, self._first_buffered + self.config.flush_interval_s - self._monotonic())
        try:
            messages = self.source.poll(self.config.poll_max_records, min(timeout, 0.5))
        except SourceError as exc:
            log.warning("%s; retrying", exc)
            self._stop.wait(self.config.retry_initial_s)
            return 0
        if messages:
            self.process(messages)
        if self._due():
            self.flush()
        return len(messages)

    def _due(self) -> bool:
        if self._polled == 0:
            return False
        if self._buffer.rows >= self.config.flush_rows or self._polled_bytes >= self.config.flush_bytes:
            return True
        return (self._first_buffered is not None
                and self._monotonic() - self._first_buffered >= self.config.flush_interval_s)

    # -- processing ----------------------------------------------------------------------------

    def process(self, messages: Sequence[RawMessage]) -> None:
        """Decode, check and buffer ``messages`` (handed out by the source, not yet committed)."""
        if self._first_buffered is None:
            self._first_buffered = self._monotonic()
        self._polled += len(messages)
        self._polled_bytes += sum(len(m.value) for m in messages)
        decoded: list[tuple[RawMessage, Event]] = []
        now_ms = int(self._clock() * 1000)
        for message in messages:
            self._buffer.owner = len(self._messages)
            self._messages.append(message)
            if message.source_error is not None:
                self._reject_raw(message, message.source_error, f"{len(message.value)} unreadable bytes", now_ms)
                continue
            try:
                event = decode_message(message)
            except DecodeError as exc:
                self._reject_raw(message, exc.reason, exc.detail, now_ms)
                continue
            decoded.append((message, event))
        if decoded:
            self._flushing = True
            try:
                loaded = self._retry(lambda: self.limiter.prepare(e for _, e in decoded),
                                     "loading run limit counters", None)
            finally:
                self._flushing = False
            if not loaded:
                # Stopping, or a rebalance took the partitions: without counters nothing can be
                # checked, so give the uncommitted messages back (they are read again).
                self._discard()
                return
        owners = {id(m): i for i, m in enumerate(self._messages)}
        for message, event in decoded:
            self._buffer.owner = owners[id(message)]
            self.metrics.events_consumed.labels(event.EVENT_TYPE).inc()
            if not self.limiter.first_time(event):
                continue  # re-delivered: stored or dead-lettered already (writer_progress); count nothing twice
            try:
                check_key(message, event)
                checked = validate(event, self.limiter.limits)
                new_names = self.limiter.apply(checked)
            except InvalidEvent as exc:
                self._reject_event(message, event, exc.reason, exc.detail, now_ms)
                continue
            except Exception as exc:  # a bug in a check must not stop the partition
                log.exception("checking %s event %s/%d failed", event.EVENT_TYPE, event.writer_id, event.seq)
                self._reject_event(message, event, "internal_error", f"{type(exc).__name__}: {exc}", now_ms)
                continue
            self._buffer.add(checked.event, checked.rejected, new_names)
            self._track(checked.event)
            if checked.rejected:
                groups = group_rejections(checked.event, checked.rejected)
                for g in groups:
                    self._buffer.reject(run_id=event.run_id, experiment=event.experiment, reason=g.reason,
                                        detail=g.detail, event_type=event.EVENT_TYPE, source=message.source,
                                        source_offset=message.offset, item=g.item, created_ms=event.created_ms,
                                        rejected_ms=now_ms)
                    self.metrics.events_rejected.labels(g.reason).inc(g.items)
                first = groups[0]
                self._letters.append(DeadLetter(message, first.reason, first.detail, len(checked.rejected)))

    def _reject_raw(self, message: RawMessage, reason: str, detail: str, now_ms: int) -> None:
        self._buffer.reject(run_id=_key_text(message), experiment="", reason=reason, detail=detail, event_type="",
                            source=message.source, source_offset=message.offset, item=WHOLE_EVENT,
                            created_ms=message.timestamp_ms, rejected_ms=now_ms)
        self._letters.append(DeadLetter(message, reason, detail, WHOLE_EVENT))
        self.metrics.events_rejected.labels(reason).inc()

    def _reject_event(self, message: RawMessage, event: Event, reason: str, detail: str, now_ms: int) -> None:
        self._buffer.reject(run_id=event.run_id[:256], experiment=event.experiment[:256], reason=reason,
                            detail=detail, event_type=event.EVENT_TYPE, source=message.source,
                            source_offset=message.offset, item=WHOLE_EVENT, created_ms=event.created_ms,
                            rejected_ms=now_ms)
        self._buffer.progress(event)
        self._letters.append(DeadLetter(message, reason, detail, WHOLE_EVENT))
        self.metrics.events_rejected.labels(reason).inc()

    def _track(self, event: Event) -> None:
        if isinstance(event, RunStatusChanged) and event.status in FINAL_STATUSES:
            self._active.pop(event.run_id, None)
        elif isinstance(event, (RunStarted, Heartbeat)):
            # Only the run's own process says it is alive: an ended run takes tags and metrics from
            # anywhere, and those must not count it as active again.
            self._active[event.run_id] = max(event.created_ms, self._active.get(event.run_id, 0))

    def _update_active(self) -> None:
        cutoff = int(self._clock() * 1000) - int(self.config.heartbeat_lost_s * 1000)
        for run_id in [r for r, last in self._active.items() if last < cutoff]:
            del self._active[run_id]
        self.metrics.active_runs.set(len(self._active))

    # -- writing -------------------------------------------------------------------------------

    def _retry(self, action: Callable[[], None], what: str, deadline: float | None) -> bool:
        """Run ``action`` until it succeeds; on sink errors back off with the source paused.

        Returns False when ``deadline`` (monotonic) passed, stopping passed its
        deadline, or a rebalance asked to abandon the batch.
        """
        backoff = Backoff(initial_s=self.config.retry_initial_s, max_s=self.config.retry_max_s)
        while True:
            try:
                action()
                if self._paused:
                    self.source.resume()
                    self._paused = False
                    log.info("%s succeeded after %d failed attempt(s); resuming", what, backoff.failures)
                return True
            except (StoreError, DeadLetterError) as exc:
                failure: Exception = exc
            except Exception as exc:  # an adapter bug or an unexpected driver error: retry, loudly
                log.exception("unexpected error while %s", what)
                failure = exc
            delay = backoff.next_delay()
            self.metrics.clickhouse_insert_errors.inc()
            if not self._paused:
                self.source.pause()
                self._paused = True
            if backoff.failures == 1 or backoff.failures % 10 == 0:
                log.warning("%s failed (%s); retrying in %.1fs with the source paused", what, failure, delay)
            limit = deadline if deadline is not None else float("inf")
            if self._stop.is_set():
                limit = min(limit, self._stop_deadline)
            if self._monotonic() + delay > self._abandon_at:
                self._abandon = True  # a rebalance waits for this member: drop the batch, it is read again
            if self._abandon or self._monotonic() + delay > limit:
                return False
            # Wait in slices, keeping the source alive between them: a rebalance announced meanwhile is
            # seen within a slice, not after a whole backoff (up to retry_max_s, the session timeout).
            slices = max(1, math.ceil(delay / self._IDLE_EVERY_S))
            for _ in range(slices):
                self._stop.wait(delay / slices) if not self._stop.is_set() else time.sleep(min(delay / slices, 0.2))
                try:
                    self.source.idle()
                except SourceError as exc:
                    log.debug("source idle failed: %s", exc)
                if self._abandon_at != float("inf"):
                    break  # a rebalance waits: try once more now, then give up at its deadline

    _IDLE_EVERY_S = 0.5
    """Longest wait between two calls of the source's ``idle`` while retrying."""

    def _write_batch(self) -> None:
        if self._letters and not self._letters_sent:
            self.dead_letters.send(self._letters)
            self._letters_sent = True
            for letter in self._letters:
                self.metrics.dlq_messages.labels(letter.reason).inc()
        now_ms = int(self._clock() * 1000)
        for table, columns in self._buffer.tables(now_ms):
            if table in self._written:
                continue
            started = time.perf_counter()
            try:
                self.sink.write(table, columns)
            except StoreError as exc:
                if exc.retriable or table == "writer_progress":
                    raise
                self._strikes[table] = self._strikes.get(table, 0) + 1
                if self._strikes[table] < self.POISON_STRIKES:
                    raise
                self._isolate(table, columns, exc)
            self.metrics.clickhouse_insert_seconds.observe(time.perf_counter() - started)
            self._written.add(table)
            self.metrics.points_written.labels(table).inc(len(next(iter(columns.values()))))

    POISON_STRIKES = 3
    """Non-retriable refusals of one table's batch before its messages are written one by one."""

    def _isolate(self, table: str, columns: Mapping[str, Sequence[Any]], first: StoreError) -> None:
        """The server keeps refusing ``table``'s rows as invalid: write them message by message and
        dead-letter the messages it refuses (``sink_rejected``), so one bad row cannot stall a partition.

        A refused message counts as handled only once its dead letter is sent: until then it waits in
        ``_refused``, which survives the retries of a failed send or of a later message's write.
        """
        log.error("ClickHouse refuses %s rows as invalid (%s); writing them message by message", table, first)
        for owner, start, end in self._buffer.owner_ranges(table):
            if (table, owner) in self._isolated:
                continue
            part = {c: v[start:end] for c, v in columns.items()}
            try:
                self.sink.write(table, part)
            except StoreError as exc:
                if exc.retriable:
                    raise
                message = self._messages[owner]
                log.error("dead-lettering %s@%d: ClickHouse refuses its %s rows: %s", message.source,
                          message.offset, table, exc)
                self._refused.append(DeadLetter(message, "sink_rejected", f"{table}: {exc}"[:500], WHOLE_EVENT))
            self._isolated.add((table, owner))
        self._send_refused()

    def _send_refused(self) -> None:
        """Dead-letter the refused messages not sent yet, then record them in ``rejected_events``.

        Raises (and the batch is retried) until the dead letters are sent; the
        ``rejected_events`` rows are retried while the failure is retriable.
        """
        unsent = self._refused[self._refused_sent:]
        if unsent:
            self.dead_letters.send(unsent)
            self._refused_sent = len(self._refused)
            for _ in unsent:
                self.metrics.dlq_messages.labels("sink_rejected").inc()
                self.metrics.events_rejected.labels("sink_rejected").inc()
        unrecorded = self._refused[self._refused_recorded:]
        if not unrecorded:
            return
        now_ms = int(self._clock() * 1000)
        messages = [letter.message for letter in unrecorded]
        try:
            self.sink.write("rejected_events", {
                "run_id": [_key_text(m) for m in messages], "experiment": [""] * len(messages),
                "reason": ["sink_rejected"] * len(messages), "detail": [letter.detail for letter in unrecorded],
                "event_type": [""] * len(messages), "source": [m.source for m in messages],
                "source_offset": [m.offset for m in messages], "item": [WHOLE_EVENT] * len(messages),
                "created_ms": [m.timestamp_ms for m in messages], "rejected_ms": [now_ms] * len(messages)})
        except StoreError as exc:
            if getattr(exc, "retriable", True):
                raise
            # The dead letters hold the bytes and the reason; a row the server refuses cannot be forced in.
            log.warning("could not record %d sink rejections in rejected_events: %s", len(messages), exc)
        self._refused_recorded = len(self._refused)

    def flush(self, deadline: float | None = None) -> bool:
        """Write the batch and commit the source; True on success (also when there was nothing to do).

        Without ``deadline`` it retries until the sink takes the batch or the
        worker is stopped. False leaves the batch buffered (or dropped when a
        rebalance abandoned it).
        """
        if self._polled == 0:
            return True
        self._flushing = True
        try:
            ok = self._retry(self._write_batch, "writing a batch", deadline)
        finally:
            self._flushing = False
        if not ok:
            if self._abandon:
                self._discard()
            return False
        rows = self._buffer.rows
        self.metrics.batch_rows.observe(rows)
        now = self._clock()
        for created_ms in self._buffer.created_ms:
            self.metrics.end_to_end_latency.observe(max(0.0, now - created_ms / 1000.0))
        try:
            self.source.commit()
        except SourceError as exc:
            # The rows are in; the uncommitted messages will be re-read and collapse.
            log.warning("%s", exc)
        self.committed_messages += self._polled
        self._reset_batch()
        if self._revoked:
            self._forget_runs()
        self.limiter.trim()
        self._update_active()
        backlog = self.source.backlog_bytes()
        if backlog is not None:
            self.metrics.spool_backlog_bytes.set(backlog)
        return True

    def _reset_batch(self) -> None:
        self._buffer.clear()
        self._letters.clear()
        self._letters_sent = False
        self._written.clear()
        self._polled = 0
        self._polled_bytes = 0
        self._messages.clear()
        self._strikes.clear()
        self._isolated.clear()
        self._abandon_at = float("inf")
        self._refused.clear()
        self._refused_sent = 0
        self._refused_recorded = 0
        self._first_buffered = None

    def _discard(self) -> None:
        log.warning("dropping an unwritten batch of %d rows; its messages will be read again", self._buffer.rows)
        self._reset_batch()
        self._abandon = False
        self._revoked = False
        self.limiter.forget_all()
        self.source.rewind()
        if self._paused:
            self.source.resume()
            self._paused = False

    def on_revoke(self) -> None:
        """Kafka rebalance, called by the source on this thread: flush and commit within the rebalance
        budget (or drop the batch), then forget per-run state, as other workers may own these runs next."""
        if self._flushing:
            # Asked from inside our own flush (the source's idle): it ends within the budget.
            self._abandon_at = min(self._abandon_at, self._monotonic() + self._rebalance_budget_s)
            self._revoked = True
            return
        if self._polled:
            deadline = self._monotonic() + self._rebalance_budget_s
            if not self.flush(deadline=deadline):
                self._discard()
        self._forget_runs()

    def _forget_runs(self) -> None:
        # Another worker may own these runs next: rebuild their counters from ClickHouse.
        self._revoked = False
        self.limiter.forget_all()
        self._active.clear()
