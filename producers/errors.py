"""Errors the training-side SDK raises (a branch of :mod:`schemas.errors`).

Validation errors subclass ``ValueError`` or ``TypeError`` too, so code written
for Azure ML's SDK that catches those keeps working::

    PipelineError
    └── SdkError
        ├── InvalidLogCall      (ValueError)  bad name, length, shape, count, image
        ├── InvalidValueType    (TypeError)   a value of an unsupported type
        ├── RunNotActive                      logging to a completed/failed/canceled run
        ├── TransportError      (retriable)   Kafka or the spool could not take the bytes
        │   └── BufferFull                    memory bound hit and nothing drains (on_buffer_full="raise")
        ├── ReadError                          reading runs back failed
        │   ├── RunNotFound     (LookupError)
        │   └── IngestNotRunning              Kafka mode, events not visible: no `runstream ingest`?
        └── JobFailed                          a submitted script failed (wait_for_completion)

Bad settings raise :class:`schemas.errors.ConfigurationError` (a ``ValueError``),
shared with every other process and re-exported here for the SDK's users.
"""

from __future__ import annotations

from schemas.errors import ConfigurationError, PipelineError

__all__ = [
    "SdkError",
    "InvalidLogCall",
    "InvalidValueType",
    "RunNotActive",
    "TransportError",
    "BufferFull",
    "ConfigurationError",
    "ReadError",
    "RunNotFound",
    "IngestNotRunning",
    "JobFailed",
]


class SdkError(PipelineError):
    """Root of the SDK's errors."""


class InvalidLogCall(SdkError, ValueError):
    """A logging call broke a rule (name or value too long, too many columns, ...); nothing was logged."""


class InvalidValueType(SdkError, TypeError):
    """A value's type cannot be logged; nothing was logged."""


class RunNotActive(SdkError):
    """The run has ended; it takes no more events."""


class TransportError(SdkError):
    """Kafka or the spool could not take the bytes; the emitter retries or spills."""

    retriable = True


class BufferFull(TransportError):
    """The emitter's memory bound was hit and neither Kafka nor the spool drains it.

    Raised only with ``on_buffer_full="raise"``; the default blocks the caller
    until there is room. Nothing of the failed call was logged.
    """


class ReadError(SdkError):
    """Reading runs back failed."""


class RunNotFound(ReadError, LookupError):
    """No run with that id in that experiment."""


class IngestNotRunning(ReadError):
    """Events were sent to Kafka but did not become visible in time: is `runstream ingest` running?"""

    retriable = True


class JobFailed(SdkError):
    """A submitted script ended Failed (non-zero exit, uncaught exception, killed, or could not start).

    Raised by ``run.wait_for_completion(raise_on_error=True)``; like Azure ML's
    ``ActivityFailedException`` it carries the job's error text (the traceback,
    or the tail of its stderr).
    """

    def __init__(self, message: str, *, run_id: str, error_details: str | None, exit_code: int | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        """The failed run."""
        self.error_details = error_details
        """The run's error details as stored (at most 3,000 characters)."""
        self.exit_code = exit_code
        """The script's exit code (negative: killed by that signal); None when unknown (another process ran it)."""
