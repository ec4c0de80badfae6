"""In-memory fakes of the ingest seams, for tests that need no broker and no database.

- :class:`InMemorySink`: an ``EventSink`` that keeps rows per table; it can be
  told to fail (``fail_next``/``down``) to exercise retries.
- :class:`ListSource`: a ``Source`` over a list of messages, with committed
  position, pause and rewind like the real ones.
- :class:`MemoryDeadLetters`, :class:`FixedCounterLoader`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from schemas.kafka_client import kafka
from store.errors import StoreError, sink_error

from .dlq import DeadLetter
from .errors import DeadLetterError
from .limits import RunCounters
from .message import RawMessage
from .source import ensure_topics

__all__ = [
    "InMemorySink",
    "ListSource",
    "MemoryDeadLetters",
    "FixedCounterLoader",
    "create_topic",
    "produce",
    "wait_until",
]


class InMemorySink:
    """Rows per table, as dicts; ``write`` is all-or-nothing per call."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.writes: list[tuple[str, int]] = []
        self.down = False
        """While True every write raises ``StoreError``."""
        self.fail_next = 0
        """This many more writes raise ``StoreError``."""
        self.closed = False

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        if self.down:
            raise sink_error("in-memory sink is down")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise sink_error("in-memory sink failed on purpose")
        names = list(columns)
        lengths = {len(columns[n]) for n in names}
        if len(lengths) != 1:
            raise ValueError(f"{table}: columns differ in length: {lengths}")
        n = lengths.pop()
        rows = self.tables.setdefault(table, [])
        for i in range(n):
            rows.append({name: columns[name][i] for name in names})
        self.writes.append((table, n))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Rows written to ``table`` (duplicates included, as before a merge)."""
        return self.tables.get(table, [])

    def close(self) -> None:
        self.closed = True


class ListSource:
    """Hands out ``messages`` in order; ``commit`` moves the committed position to what was handed out."""

    def __init__(self, messages: Sequence[RawMessage] = ()) -> None:
        self.messages = list(messages)
        self.position = 0
        self.committed = 0
        self.paused = False
        self.commits = 0
        self.closed = False
        self.backlog: int | None = None

    def append(self, *messages: RawMessage) -> None:
        self.messages.extend(messages)

    def poll(self, max_records: int, timeout_s: float) -> list[RawMessage]:
        if self.paused:
            return []
        out = self.messages[self.position : self.position + max_records]
        self.position += len(out)
        return out

    def commit(self) -> None:
        self.committed = self.position
        self.commits += 1

    def rewind(self) -> None:
        self.position = self.committed

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def idle(self) -> None:
        pass

    ready = True

    def backlog_bytes(self) -> int | None:
        return self.backlog

    def close(self) -> None:
        self.closed = True


class MemoryDeadLetters:
    """Keeps dead letters in a list."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.down = False

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.down:
            raise DeadLetterError("dead letters are down")
        self.letters.extend(letters)

    def close(self) -> None:
        pass


class FixedCounterLoader:
    """Returns preset counters (a copy), counting calls; ``down`` makes it raise ``StoreError``."""

    def __init__(self, counters: Mapping[str, RunCounters] | None = None) -> None:
        self.counters = dict(counters or {})
        self.calls: list[list[tuple[str, str]]] = []
        self.down = False

    def load(self, runs: Sequence[tuple[str, str]]) -> Mapping[str, RunCounters]:
        if self.down:
            raise StoreError("counter store is down")
        self.calls.append(list(runs))
        out = {}
        for _, run_id in runs:
            c = self.counters.get(run_id)
            if c is not None:
                out[run_id] = RunCounters(dict(c.names), dict(c.rows), set(c.tags), set(c.properties),
                                          dict(c.progress))
        return out


# -- helpers for tests against the real stack ------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` (auto-creation is off on runstream's brokers)."""
    ensure_topics(bootstrap, {topic: partitions})


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Send ``(key, value)`` pairs and wait until the broker has them all."""
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                   max_request_size=2 * 1024 * 1024)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages]
        producer.flush(timeout=60)
        for fut in futures:
            fut.get(timeout=60)
    finally:
        producer.close(timeout=10)


def wait_until(predicate: Any, *, timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> Any:
    """Poll ``predicate()`` until it returns something truthy; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")
