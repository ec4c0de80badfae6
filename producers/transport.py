"""The seam between the emitter and where its bytes go, and the spool transport (the embedded default).

The emitter's background thread encodes events and hands each message to an
:class:`EventTransport`: key = the run id (so one run's events stay in one
Kafka partition, in order), value = the encoded event. Implementations:

- :class:`SpoolTransport` here: append-only segment files under
  ``$RUNSTREAM_HOME/spool`` (no broker);
- :class:`producers.kafka_transport.KafkaTransport`: kafka-python;
- :class:`producers.failover.FailoverTransport`: Kafka, with the outbox spool
  while the broker is unreachable;
- :class:`producers.testing.InMemoryTransport`: for tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

from schemas.spool import SpoolWriter

from .errors import TransportError

__all__ = ["EventTransport", "SpoolTransport", "ResilientSpoolWriter"]

_log = logging.getLogger("runstream.transport")


@runtime_checkable
class EventTransport(Protocol):
    """Takes encoded events; one thread (the emitter's) calls ``send``."""

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Take one message without blocking for long; raise :class:`TransportError` if it cannot be taken now.

        A message ``send`` returned for is the transport's to deliver: it must
        not be lost later without ``flush`` reporting it.
        """

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message taken so far is delivered (or durably stored); False on timeout."""

    def close(self) -> None:
        """Flush what can be flushed and release resources; idempotent."""


class ResilientSpoolWriter:
    """A :class:`SpoolWriter` that survives a failed append (disk full, I/O error).

    A failed append may leave half a frame at the end of the open segment.
    The segment is sealed there (readers see a truncated tail and stop) and
    the next append starts a fresh segment, so the message can be retried
    without corrupting anything after it.
    """

    def __init__(self, directory: Path, writer_id: str, *, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.writer_id = writer_id
        self._segment_bytes = segment_bytes
        self._writer: SpoolWriter | None = None
        self._broken: list[SpoolWriter] = []  # kept open (and locked) rather than half-closed

    def append(self, key: bytes, value: bytes) -> None:
        """Append one message; raises :class:`TransportError` when the disk cannot take it."""
        try:
            if self._writer is None:
                self._writer = SpoolWriter(self.directory, self.writer_id, segment_bytes=self._segment_bytes)
            self._writer.append(key, value)
        except OSError as exc:
            self._abandon_segment()
            raise TransportError(f"spool {self.directory}: {exc}") from exc

    def sync(self) -> None:
        """fsync the open segment."""
        if self._writer is None:
            return
        try:
            self._writer.sync()
        except OSError as exc:
            self._abandon_segment()
            raise TransportError(f"spool {self.directory}: fsync failed: {exc}") from exc

    def seal(self) -> None:
        """Seal the open segment (``.open`` -> ``.seg``); the next append opens a new one."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.seal()
        except OSError as exc:
            self._broken.append(writer)
            raise TransportError(f"spool {self.directory}: sealing failed: {exc}") from exc

    close = seal

    @property
    def open_segment_bytes(self) -> int:
        """Bytes in the open segment (0 when none is open)."""
        return self._writer.bytes_written if self._writer is not None else 0

    def _abandon_segment(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.seal()
        except OSError:
            # Keep it referenced: its file stays open and flock'ed, so no reader
            # takes it for a crashed writer's; the process exit releases it.
            self._broken.append(writer)


class SpoolTransport:
    """Appends every message to this writer's own segments in the spool directory (the embedded default).

    Many processes may write to one spool at once: each owns its segment
    files. The ingest side reads ``.open`` segments while they grow.
    """

    def __init__(self, directory: Path, writer_id: str, *, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self._writer = ResilientSpoolWriter(directory, writer_id, segment_bytes=segment_bytes)
        self.directory = Path(directory)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Append one message (the topic is implied by the spool)."""
        self._writer.append(key, value)

    def flush(self, timeout: float | None = None) -> bool:
        """Make what was appended durable (fsync)."""
        try:
            self._writer.sync()
        except TransportError as exc:
            _log.warning("spool flush failed: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Seal the open segment."""
        try:
            self._writer.seal()
        except TransportError as exc:
            _log.warning("%s", exc)
