"""Test helpers shipped with the SDK: an in-memory transport and a manual clock.

    transport = InMemoryTransport()
    ws = Workspace(transport=transport, clock=ManualClock(1_700_000_000.0))
    ...
    ws.flush()
    events = transport.events()          # decoded, typed records in send order
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypeVar

from schemas.codec import decode
from schemas.records import Event

from .errors import TransportError

__all__ = ["InMemoryTransport", "SentMessage", "ManualClock"]

E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message as the transport received it."""

    topic: str
    key: bytes
    value: bytes


class InMemoryTransport:
    """An :class:`~producers.transport.EventTransport` that keeps every message in a list.

    ``fail_sends`` makes the next N ``send`` calls raise :class:`TransportError`
    (to exercise the emitter's retry path); ``hold()`` blocks ``send`` until
    ``release()`` (a stalled broker).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[SentMessage] = []
        self._open = threading.Event()
        self._open.set()
        self.fail_sends = 0
        self.flushes = 0
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Keep the message (or fail/stall as configured)."""
        self._open.wait()
        with self._lock:
            if self.fail_sends > 0:
                self.fail_sends -= 1
                raise TransportError("InMemoryTransport: failing as configured")
            self._messages.append(SentMessage(topic, bytes(key), bytes(value)))

    def flush(self, timeout: float | None = None) -> bool:
        """Always delivered."""
        with self._lock:
            self.flushes += 1
        return True

    def close(self) -> None:
        """Mark closed (messages stay readable)."""
        self.closed = True

    def hold(self) -> None:
        """Make ``send`` block until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Let blocked ``send`` calls through."""
        self._open.set()

    @property
    def messages(self) -> list[SentMessage]:
        """Every message, in send order."""
        with self._lock:
            return list(self._messages)

    def events(self, kind: type[E] | None = None, *, run_id: str | None = None) -> list[E]:
        """Decoded records in send order, optionally only one type and/or one run."""
        out = []
        for message in self.messages:
            event = decode(message.value)
            if kind is not None and not isinstance(event, kind):
                continue
            if run_id is not None and event.run_id != run_id:
                continue
            out.append(event)
        return out  # type: ignore[return-value]

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._messages.clear()


class ManualClock:
    """A clock tests move by hand: ``clock()`` returns epoch seconds, ``advance(s)`` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
