"""Replaying the outbox: the one way spooled Kafka batches are sent once the broker answers.

In Kafka mode a process appends to ``$RUNSTREAM_HOME/outbox/<writer_id>-N``
while the broker is unreachable. Two callers send those segments on later,
both through :func:`replay_segment`:

- the process itself, once the broker answers again
  (:class:`~producers.failover.FailoverTransport`'s replayer thread);
- ``runstream spool replay`` (:func:`producers.spool_tools.replay`), for
  processes that died before they could.

A segment is sent in order, in chunks; each chunk is acknowledged before the
next is sent, and the caller records how far it got after every chunk. A
message the broker refuses for good (too large, invalid) is kept in
``outbox/rejected`` — never dropped silently — and the replay goes on.
Delivery into Kafka is at-least-once: a chunk sent again after an interruption
is collapsed by the store on ``(writer_id, seq)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas.spool import SpoolCorruption, SpoolRecord, SpoolWriter, read_segment

from .errors import TransportError
from .kafka_transport import KafkaTransport, is_poison

__all__ = ["REJECTED_DIR", "SegmentReplay", "keep_rejected", "replay_segment", "send_chunk"]

_log = logging.getLogger("runstream.outbox")

REJECTED_DIR = "rejected"
"""Subfolder of the outbox for messages the broker refused for good."""


@dataclass(frozen=True, slots=True)
class SegmentReplay:
    """How one :func:`replay_segment` call ended."""

    sent: int
    """Messages acknowledged (or kept as rejected) by this call."""
    end: int
    """Offset replayed up to: the end of the last record sent, or of the readable part."""
    corruption: SpoolCorruption | None
    """The unreadable tail that stopped the replay, if any."""
    rejected: int = 0
    """Messages the broker refused for good, kept in ``outbox/rejected``."""
    value_bytes: int = 0
    """Bytes of the messages sent (values only)."""


def keep_rejected(outbox: Path, writer_id: str, record: SpoolRecord, exc: BaseException | None) -> None:
    """Keep a message the broker refuses for good in ``outbox/rejected``; ``TransportError`` if the disk fails."""
    directory = outbox / REJECTED_DIR
    try:
        writer = SpoolWriter(directory, writer_id)
        try:
            writer.append(record.key, record.value)
        finally:
            writer.seal()
    except OSError as err:
        raise TransportError(f"Kafka refused a message ({exc}) and it could not be kept in {directory}: {err}") \
            from err
    _log.error("Kafka refused a %d-byte message (%s); kept in %s", len(record.value), exc, directory)


def send_chunk(kafka: KafkaTransport, topic: str, chunk: list[SpoolRecord], *, timeout_s: float,
               reject: Callable[[SpoolRecord, BaseException | None], None],
               stop: Callable[[], bool] = lambda: False,
               monotonic: Callable[[], float] = time.monotonic) -> int | None:
    """Send ``chunk`` and wait for every acknowledgement; refused-for-good messages go to ``reject``.

    Returns how many of them were rejected, or None when the chunk did not all
    get through within ``timeout_s`` (or ``stop()`` said to give up): the caller
    sends it again later. The wait is in short steps so a closing process is
    never held up by a silent broker.
    """
    try:
        futures = [kafka.send_async(topic, record.key, record.value) for record in chunk]
    except TransportError as exc:
        _log.debug("replay send failed: %s", exc)
        return None
    deadline = monotonic() + timeout_s
    while not kafka.wait_for(futures, 0.1):
        if stop() or monotonic() >= deadline:
            return None
    rejected = 0
    for record, future in zip(chunk, futures):
        if future.succeeded():
            continue
        if future.failed() and is_poison(future.exception):
            reject(record, future.exception)
            rejected += 1
            continue
        _log.debug("replay delivery failed: %s", future.exception)
        return None
    return rejected


def replay_segment(kafka: KafkaTransport, topic: str, path: Path, start: int, *, timeout_s: float,
                   reject: Callable[[SpoolRecord, BaseException | None], None],
                   on_chunk: Callable[[int, int], None] = lambda end, sent: None,
                   stop: Callable[[], bool] = lambda: False,
                   chunk_records: int = 256, chunk_bytes: int = 4 * 1024 * 1024) -> SegmentReplay | None:
    """Send ``path`` from offset ``start`` to its end (or its unreadable tail), chunk by chunk.

    ``on_chunk(end, sent)`` runs after each acknowledged chunk with the offset
    replayed up to. Returns None when a chunk did not get through (nothing past
    the last ``on_chunk`` counts as sent); ``FileNotFoundError`` when the
    segment is gone.
    """
    sent = rejected = value_bytes = 0
    end = start
    chunk: list[SpoolRecord] = []
    size = 0

    def flush() -> bool:
        nonlocal sent, rejected, value_bytes, end, chunk, size
        refused = send_chunk(kafka, topic, chunk, timeout_s=timeout_s, reject=reject, stop=stop)
        if refused is None:
            return False
        sent += len(chunk)
        rejected += refused
        value_bytes += size
        end = chunk[-1].next_offset
        on_chunk(end, sent)
        chunk, size = [], 0
        return True

    corruption: SpoolCorruption | None = None
    for item in read_segment(path, start):
        if isinstance(item, SpoolCorruption):
            corruption = item
            break
        chunk.append(item)
        size += len(item.value)
        if (len(chunk) >= chunk_records or size >= chunk_bytes) and not flush():
            return None
    if chunk and not flush():
        return None
    return SegmentReplay(sent=sent, end=end, corruption=corruption, rejected=rejected, value_bytes=value_bytes)
