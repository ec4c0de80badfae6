"""Errors of the ingest side (a branch of :mod:`schemas.errors`)::

    PipelineError
    └── IngestError
        ├── InvalidEvent        decoded, but breaks a rule -> dead-letter, count
        │   └── RunLimitExceeded   over a per-run limit -> dead-letter, count
        ├── SourceError         (retriable) Kafka / spool unavailable
        └── DeadLetterError     (retriable) the dead letters could not take a message

A failed insert is the store's :class:`store.errors.StoreError`; bad settings
are :class:`schemas.errors.ConfigurationError`. ``InvalidEvent.reason`` is a
short token from a bounded set (a metrics label).
"""

from __future__ import annotations

from schemas.errors import PipelineError

__all__ = ["IngestError", "InvalidEvent", "RunLimitExceeded", "SourceError", "DeadLetterError"]


class IngestError(PipelineError):
    """Root of the ingest side's errors."""


class InvalidEvent(IngestError):
    """A decoded event (or one item of it) breaks a rule; it is dead-lettered, the rest is kept."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail[:500]
        super().__init__(f"{reason}: {self.detail}" if self.detail else reason)


class RunLimitExceeded(InvalidEvent):
    """An item would push its run over a per-run limit (e.g. the 51st metric name)."""


class SourceError(IngestError):
    """The event source (Kafka or the spool) failed."""

    retriable = True


class DeadLetterError(IngestError):
    """The dead letters (the DLQ topic or folder) could not take a message; the batch is retried."""

    retriable = True
