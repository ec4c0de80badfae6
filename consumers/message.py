"""What a source hands the worker: one message's bytes and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RawMessage"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from Kafka or a spool segment.

    ``source`` names the log it came from (``"<topic>/<partition>"`` for Kafka, the
    segment file name for the spool); with ``offset`` it identifies the message
    for dead letters and ``rejected_events``.
    """

    source: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0
    source_error: str | None = None
    """Set when the source could not frame these bytes (spool corruption): dead-letter them unread."""

    @property
    def topic(self) -> str:
        """The Kafka topic, or ``"spool"``."""
        topic, sep, _ = self.source.rpartition("/")
        return topic if sep else "spool"
