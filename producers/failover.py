"""Kafka with a disk fallback: the outbox spool takes over while the broker is unreachable.

States::

    direct ──(send/flush fails, no ack for stall_timeout_s, too much unacked)──▶ spooling
      ▲                                                                            │
      └────────(replayer: broker answers, outbox replayed to the very end)────────┘

In ``direct`` every message goes to Kafka and is remembered until acknowledged.
On a trip the producer is aborted and every message not acknowledged, in send
order, is appended to the outbox (``$RUNSTREAM_HOME/outbox/<writer_id>-N``),
followed by everything sent later: while anything is spooled, new messages go
through the spool too, so no message overtakes an older one of the same run.
The replayer thread reconnects with backoff, sends the outbox in order
(waiting for each chunk's acknowledgements) and switches back to ``direct``
under the lock once nothing is left, so the switch cannot reorder either.

A message acknowledged by the broker whose acknowledgement was lost in the
outage is sent again by the replay: delivery into Kafka is at-least-once, and
``(writer_id, seq)`` lets the store collapse the copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, NamedTuple

from schemas.backoff import Backoff
from schemas.spool import SEGMENT_MAGIC, SpoolRecord, list_segments

from schemas.errors import AccessDenied

from .errors import TransportError
from .kafka_transport import KafkaTransport, SendHandle
from .outbox import keep_rejected, replay_segment
from .transport import ResilientSpoolWriter

__all__ = ["FailoverTransport"]

_log = logging.getLogger("runstream.failover")

_DIRECT = "direct"
_SPOOLING = "spooling"


class _Unacked(NamedTuple):
    key: bytes
    value: bytes
    future: SendHandle
    sent_at: float


class FailoverTransport:
    """An :class:`~producers.transport.EventTransport` sending to Kafka, spooling to ``outbox`` during outages.

    ``connect`` builds a connected :class:`KafkaTransport` or raises
    :class:`TransportError`; it is called on the first send (on the emitter's
    thread) and by the replayer when retrying.
    """

    def __init__(
        self,
        connect: Callable[[], KafkaTransport],
        topic: str,
        outbox: Path,
        writer_id: str,
        *,
        stall_timeout_s: float = 5.0,
        max_unacked_bytes: int = 32 * 1024 * 1024,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
        replay_chunk_records: int = 256,
        replay_chunk_bytes: int = 4 * 1024 * 1024,
        close_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.outbox = Path(outbox)
        self.writer_id = writer_id
        self._connect = connect
        self._stall = stall_timeout_s
        self._max_unacked = max_unacked_bytes
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._chunk_records = replay_chunk_records
        self._chunk_bytes = replay_chunk_bytes
        self._clock = clock
        self._close_timeout = close_timeout_s
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._mode = _DIRECT
        self._kafka: KafkaTransport | None = None
        self._tried_connect = False
        self._unacked: deque[_Unacked] = deque()
        self._unacked_bytes = 0
        self._backlog: deque[tuple[bytes, bytes]] = deque()  # tripped, not yet in the outbox (disk failing)
        self._backlog_bytes = 0
        self._spool = ResilientSpoolWriter(self.outbox, writer_id)
        self._spooled = 0
        self._trips = 0
        self._to_abort: list[KafkaTransport] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = False

    # -- what the emitter sees -------------------------------------------------

    @property
    def spooling(self) -> bool:
        """True while messages go to the outbox instead of Kafka."""
        return self._mode == _SPOOLING

    @property
    def trips(self) -> int:
        """How many times the transport switched from Kafka to the outbox."""
        return self._trips

    def buffered_bytes(self) -> int:
        """Bytes held in memory: sent but unacknowledged, or waiting for the disk."""
        return self._unacked_bytes + self._backlog_bytes

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Send to Kafka, or append to the outbox while spooling; :class:`TransportError` if neither takes it."""
        if topic != self.topic:
            raise ValueError(f"this transport sends to {self.topic!r}, not {topic!r}")
        with self._lock:
            if self._closed:
                raise TransportError("transport is closed")
            if self._mode == _DIRECT:
                self._reap_locked()
            if self._mode == _DIRECT and self._kafka is None:
                self._connect_first_locked()
            if self._mode == _DIRECT:
                assert self._kafka is not None
                try:
                    future = self._kafka.send_async(topic, key, value)
                except TransportError as exc:
                    self._trip_locked(str(exc))
                else:
                    self._unacked.append(_Unacked(key, value, future, self._clock()))
                    self._unacked_bytes += len(key) + len(value)
                    return
            self._spool_locked(key, value)

    def flush(self, timeout: float | None = None) -> bool:
        """True once everything sent is acknowledged by Kafka or fsync'ed in the outbox."""
        with self._lock:
            kafka = self._kafka if self._mode == _DIRECT else None
            futures = [entry.future for entry in self._unacked]
        if kafka is not None:
            # Waiting the full stall timeout without every acknowledgement makes the
            # reap below trip to the outbox; a shorter wait just reports "not yet".
            wait = self._stall if timeout is None else max(0.0, min(timeout, self._stall))
            kafka.wait_for(futures, wait)
            with self._lock:
                if self._kafka is kafka:
                    self._reap_locked()
        with self._lock:
            if self._mode == _DIRECT:
                return not self._unacked
            try:
                self._drain_backlog_locked()
                self._spool.sync()
            except TransportError as exc:
                _log.warning("outbox flush failed: %s", exc)
                return False
            return True

    def close(self) -> None:
        """Flush; give the replayer ``close_timeout_s`` to empty the outbox; then stop. Idempotent."""
        if self._closed:
            return
        timeout = self._close_timeout
        deadline = None if timeout is None else self._clock() + timeout
        self.flush(timeout)
        with self._lock:
            while self._mode == _SPOOLING and self._thread is not None:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    break
                self._wake.set()
                self._drained.wait(0.2 if remaining is None else min(0.2, remaining))
            self._closing = True
            self._closed = True
            kafka, self._kafka = self._kafka, None
            spooling = self._mode == _SPOOLING
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if kafka is not None:
            remaining = 5.0 if deadline is None else max(0.5, deadline - self._clock())
            kafka.close(remaining)
        self._abort_old()
        with self._lock:
            try:
                self._drain_backlog_locked()
                self._spool.seal()
            except TransportError as exc:
                _log.error("outbox could not take %d buffered messages: %s", len(self._backlog), exc)
        if spooling:
            left = sum(1 for p in self._own_segments() if p.stat().st_size > len(SEGMENT_MAGIC))
            if left:
                _log.warning(
                    "Kafka did not answer before exit: %d outbox segment(s) left in %s; "
                    "`runstream spool replay` sends them when it is back",
                    left,
                    self.outbox,
                )

    # -- direct mode -----------------------------------------------------------

    def _connect_first_locked(self) -> None:
        if self._tried_connect:
            self._trip_locked("no producer")
            return
        self._tried_connect = True
        try:
            self._kafka = self._connect()
        except TransportError as exc:
            self._trip_locked(f"cannot connect ({exc})")
        except AccessDenied as exc:  # events stay safe in the outbox; someone has to fix the settings
            _log.error("runstream: Kafka refused this process: %s; events go to the outbox meanwhile", exc)
            self._trip_locked(f"refused ({exc})")

    def _reap_locked(self) -> None:
        """Drop acknowledged messages from the head; trip on a failure, a stall or too much unacknowledged."""
        unacked = self._unacked
        while unacked and unacked[0].future.is_done:
            head = unacked[0]
            if not head.future.succeeded():
                self._trip_locked(f"delivery failed ({head.future.exception})")
                return
            unacked.popleft()
            self._unacked_bytes -= len(head.key) + len(head.value)
        if not unacked:
            return
        if self._clock() - unacked[0].sent_at > self._stall:
            self._trip_locked(f"no acknowledgement for {self._stall:g}s")
        elif self._unacked_bytes > self._max_unacked:
            self._trip_locked(f"{self._unacked_bytes} bytes unacknowledged (broker too slow); spilling")
        elif any(entry.future.failed() for entry in unacked):
            self._trip_locked("delivery failed")

    def _trip_locked(self, reason: str) -> None:
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            self._to_abort.append(kafka)
        self._mode = _SPOOLING
        self._trips += 1
        for entry in self._unacked:
            if not entry.future.succeeded():
                self._backlog.append((entry.key, entry.value))
                self._backlog_bytes += len(entry.key) + len(entry.value)
        self._unacked.clear()
        self._unacked_bytes = 0
        _log.warning("Kafka: %s; spooling to %s until the broker answers", reason, self.outbox)
        try:
            self._drain_backlog_locked()
        except TransportError as exc:
            _log.error("outbox write failed, %d messages held in memory: %s", len(self._backlog), exc)
        self._start_thread_locked()
        self._wake.set()

    # -- spooling --------------------------------------------------------------

    def _spool_locked(self, key: bytes, value: bytes) -> None:
        self._drain_backlog_locked()
        self._spool.append(key, value)
        self._spooled += 1
        self._wake.set()

    def _drain_backlog_locked(self) -> None:
        backlog = self._backlog
        while backlog:
            key, value = backlog[0]
            self._spool.append(key, value)
            backlog.popleft()
            self._backlog_bytes -= len(key) + len(value)
            self._spooled += 1

    def _own_segments(self) -> list[Path]:
        prefix = self.writer_id + "-"
        return [p for p in list_segments(self.outbox) if p.name.startswith(prefix)]

    def _start_thread_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._replayer, name="runstream-replayer", daemon=True)
            self._thread.start()

    def _abort_old(self) -> None:
        with self._lock:
            old, self._to_abort = self._to_abort, []
        for kafka in old:
            kafka.abort()

    # -- the replayer thread ---------------------------------------------------

    def _replayer(self) -> None:
        backoff = Backoff(initial_s=self._retry_initial, max_s=self._retry_max)
        next_attempt = 0.0
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._closing:
                return
            self._abort_old()
            with self._lock:
                if self._mode == _DIRECT:
                    self._reap_locked()
                    continue
            if self._clock() < next_attempt:
                continue
            try:
                kafka = self._connect()
            except TransportError as exc:
                _log.debug("Kafka still unreachable: %s", exc)
                next_attempt = self._clock() + backoff.next_delay()
                continue
            except AccessDenied as exc:
                _log.debug("Kafka still refuses this process: %s", exc)
                next_attempt = self._clock() + backoff.next_delay()
                continue
            try:
                replayed = self._replay_into(kafka)
            except Exception:
                _log.exception("outbox replay failed")
                replayed = None
            if replayed is None:
                kafka.abort()
                next_attempt = self._clock() + backoff.next_delay()
                continue
            backoff.reset()
            _log.warning("Kafka answers again: %d outbox message(s) replayed; sending directly", replayed)

    def _replay_into(self, kafka: KafkaTransport) -> int | None:
        """Send the outbox in order; on reaching its end switch to direct. Returns messages sent, None on failure."""
        done: dict[str, int] = {}  # segment stem -> offset replayed up to
        sent = 0
        while not self._closing:
            for segment in self._own_segments():
                stem = segment.stem

                def progress(end: int, _sent: int, stem: str = stem) -> None:
                    done[stem] = end

                try:
                    result = replay_segment(kafka, self.topic, segment, done.get(stem, 0), timeout_s=2 * self._stall,
                                            reject=self._reject, on_chunk=progress, stop=lambda: self._closing,
                                            chunk_records=self._chunk_records, chunk_bytes=self._chunk_bytes)
                except FileNotFoundError:
                    continue  # renamed .open -> .seg while we looked; the next pass reads it under its new name
                if result is None:
                    return None
                sent += result.sent
                if result.corruption is not None:
                    # Our own half-written frame from a failed append; that message was
                    # appended again afterwards, so the segment ends here.
                    done[stem] = result.corruption.offset + len(result.corruption.data)
                if segment.suffix == ".seg":
                    segment.unlink(missing_ok=True)
                    done.pop(stem, None)
            with self._lock:
                try:
                    self._drain_backlog_locked()
                except TransportError:
                    return None
                if self._caught_up_locked(done):
                    try:
                        self._spool.seal()
                    except TransportError:
                        return None
                    for segment in self._own_segments():
                        segment.unlink(missing_ok=True)
                    self._kafka = kafka
                    self._mode = _DIRECT
                    self._spooled = 0
                    self._drained.notify_all()
                    return sent
        return None

    def _caught_up_locked(self, done: dict[str, int]) -> bool:
        for segment in self._own_segments():
            size = segment.stat().st_size
            if size > max(done.get(segment.stem, 0), len(SEGMENT_MAGIC)):
                return False
        return True

    def _reject(self, record: SpoolRecord, exc: BaseException | None) -> None:
        """The broker refuses this message for good; keep it on disk, never drop it silently."""
        keep_rejected(self.outbox, self.writer_id, record, exc)
