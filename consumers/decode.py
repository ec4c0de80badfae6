"""Bytes to typed records: the only place ingest touches the wire format.

:func:`decode_message` raises :class:`schemas.DecodeError` (bounded
``.reason``) and nothing else. :func:`check_key` rejects an event filed under
another run's key (``key_mismatch``): per-run limits rely on every event of a
run reaching the same partition.
"""

from __future__ import annotations

import schemas
from schemas.errors import DecodeError
from schemas.records import Event

from .errors import InvalidEvent
from .message import RawMessage

__all__ = ["decode_message", "check_key"]


def decode_message(message: RawMessage) -> Event:
    """Decode one message; raises ``DecodeError`` and nothing else."""
    try:
        return schemas.decode(message.value)
    except DecodeError:
        raise
    except Exception as exc:  # the codec promises DecodeError; a bug there must not stop a partition.
        raise DecodeError("malformed", f"{type(exc).__name__}: {exc}") from exc


def check_key(message: RawMessage, event: Event) -> None:
    """Raise ``InvalidEvent("key_mismatch")`` when the message key is set and is not the event's run id."""
    if message.key is not None and message.key != event.run_id.encode("utf-8", "surrogatepass"):
        raise InvalidEvent("key_mismatch", f"message key {message.key[:80]!r} is not the run id")
