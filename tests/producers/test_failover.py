"""The failover transport against a fake Kafka: trips, outbox order, replay, switch back."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from producers.errors import TransportError
from producers.failover import FailoverTransport
from schemas.spool import list_segments, read_segment


class FakeFuture:
    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def failed(self) -> bool:
        return self.is_done and self.exception is not None

    def _resolve(self, exc: BaseException | None) -> None:
        with self._lock:
            self.exception = exc
            self.is_done = True
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(None)

    def add_callback(self, fn: Callable[[Any], None]) -> None:
        self._add(fn)

    def add_errback(self, fn: Callable[[Any], None]) -> None:
        pass  # _add on add_callback already covers both outcomes

    def _add(self, fn: Callable[[Any], None]) -> None:
        with self._lock:
            if not self.is_done:
                self._callbacks.append(fn)
                return
        fn(None)


class FakeBroker:
    """What the 'cluster' has received, and whether it answers."""

    def __init__(self) -> None:
        self.up = True
        self.ack = True  # False: the broker takes requests but never answers (a stall)
        self.log: list[tuple[bytes, bytes]] = []
        self.poison: set[bytes] = set()
        self.connects = 0


class FakeKafka:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.pending: list[tuple[bytes, bytes, FakeFuture]] = []
        self.aborted = False

    def send_async(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        if self.aborted:
            raise TransportError("aborted")
        future = FakeFuture()
        if not self.broker.up:
            future._resolve(TransportError("broker down"))
        elif value in self.broker.poison:
            from kafka.errors import MessageSizeTooLargeError

            future._resolve(MessageSizeTooLargeError())
        elif self.broker.ack:
            self.broker.log.append((key, value))
            future._resolve(None)
        else:
            self.pending.append((key, value, future))
        return future

    @staticmethod
    def wait_for(futures: list, timeout: float | None) -> bool:
        from producers.kafka_transport import KafkaTransport

        return KafkaTransport.wait_for(futures, timeout)

    def abort(self) -> None:
        self.aborted = True
        for _, _, future in self.pending:
            if not future.is_done:
                future._resolve(TransportError("aborted"))

    def close(self, timeout: float | None = None) -> None:
        self.aborted = True


def make(tmp_path: Path, broker: FakeBroker, **kwargs: Any) -> FailoverTransport:
    def connect() -> FakeKafka:
        broker.connects += 1
        if not broker.up:
            raise TransportError("connection refused")
        return FakeKafka(broker)

    options = dict(stall_timeout_s=0.2, retry_initial_s=0.05, retry_max_s=0.1, close_timeout_s=2.0)
    options.update(kwargs)
    return FailoverTransport(connect, "topic", tmp_path / "outbox", "w1", **options)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def values(broker: FakeBroker) -> list[bytes]:
    return [v for _, v in broker.log]


def outbox_records(tmp_path: Path) -> list[bytes]:
    return [r.value for s in list_segments(tmp_path / "outbox") for r in read_segment(s)]


def test_direct_sends_and_flushes(tmp_path: Path) -> None:
    broker = FakeBroker()
    t = make(tmp_path, broker)
    for i in range(5):
        t.send("topic", b"run", b"%d" % i)
    assert t.flush(1) and values(broker) == [b"0", b"1", b"2", b"3", b"4"]
    assert not t.spooling and t.trips == 0 and t.buffered_bytes() == 0
    t.close()
    with pytest.raises(TransportError):
        t.send("topic", b"run", b"late")


def test_the_topic_is_fixed(tmp_path: Path) -> None:
    t = make(tmp_path, FakeBroker())
    with pytest.raises(ValueError):
        t.send("other", b"k", b"v")
    t.close()


def test_unreachable_at_start_spools_then_replays_in_order(tmp_path: Path) -> None:
    broker = FakeBroker()
    broker.up = False
    t = make(tmp_path, broker)
    for i in range(3):
        t.send("topic", b"run", b"%d" % i)
    assert t.spooling and t.trips == 1 and outbox_records(tmp_path) == [b"0", b"1", b"2"]
    assert t.flush(1)  # durable in the outbox counts as delivered
    broker.up = True
    assert wait_until(lambda: not t.spooling)
    t.send("topic", b"run", b"3")
    assert t.flush(1)
    assert values(broker) == [b"0", b"1", b"2", b"3"]
    assert list_segments(tmp_path / "outbox") == []  # replayed segments are removed
    t.close()


def test_a_stall_trips_and_spools_every_unacknowledged_message_in_order(tmp_path: Path) -> None:
    broker = FakeBroker()
    t = make(tmp_path, broker)
    t.send("topic", b"run", b"acked")
    broker.ack = False  # the broker goes silent
    for i in range(3):
        t.send("topic", b"run", b"%d" % i)
    assert t.buffered_bytes() > 0
    assert t.flush(5)  # waits up to the stall timeout, trips, spools
    assert t.spooling and outbox_records(tmp_path) == [b"0", b"1", b"2"]
    t.send("topic", b"run", b"after-trip")  # goes behind the spooled ones
    assert outbox_records(tmp_path)[-1] == b"after-trip"
    broker.ack = True
    assert wait_until(lambda: not t.spooling)
    assert values(broker) == [b"acked", b"0", b"1", b"2", b"after-trip"]
    t.close()


def test_a_failed_delivery_trips(tmp_path: Path) -> None:
    broker = FakeBroker()
    t = make(tmp_path, broker, stall_timeout_s=30)
    t.send("topic", b"run", b"0")
    broker.up = False
    t.send("topic", b"run", b"1")  # its future fails at once
    t.send("topic", b"run", b"2")  # the reap sees the failure: trip, then spool
    assert t.spooling and outbox_records(tmp_path) == [b"1", b"2"]
    broker.up = True
    assert wait_until(lambda: not t.spooling)
    assert values(broker) == [b"0", b"1", b"2"]
    t.close()


def test_too_much_unacknowledged_spills_to_disk(tmp_path: Path) -> None:
    broker = FakeBroker()
    broker.ack = False
    t = make(tmp_path, broker, stall_timeout_s=60, max_unacked_bytes=50)
    for i in range(10):
        t.send("topic", b"run", b"message-%d" % i)
    assert t.spooling and t.buffered_bytes() == 0
    t.close()


def test_replay_keeps_order_while_new_messages_keep_coming(tmp_path: Path) -> None:
    broker = FakeBroker()
    broker.up = False
    t = make(tmp_path, broker)
    sent = []
    for i in range(200):
        t.send("topic", b"run", b"%d" % i)
        sent.append(b"%d" % i)
    broker.up = True
    i = 200
    while t.spooling and i < 100_000:
        t.send("topic", b"run", b"%d" % i)
        sent.append(b"%d" % i)
        i += 1
    for j in range(i, i + 10):
        t.send("topic", b"run", b"%d" % j)
        sent.append(b"%d" % j)
    assert t.flush(5)
    assert values(broker) == sent
    t.close()


def test_close_leaves_an_outbox_when_the_broker_stays_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = FakeBroker()
    broker.up = False
    t = make(tmp_path, broker, close_timeout_s=0.3)
    t.send("topic", b"run", b"kept")
    t.close()
    assert outbox_records(tmp_path) == [b"kept"]
    assert all(s.suffix == ".seg" for s in list_segments(tmp_path / "outbox"))
    assert "runstream spool replay" in caplog.text


def test_a_poison_message_is_kept_aside_not_retried_forever(tmp_path: Path) -> None:
    broker = FakeBroker()
    broker.up = False
    t = make(tmp_path, broker)
    t.send("topic", b"run", b"good-1")
    t.send("topic", b"run", b"poison")
    t.send("topic", b"run", b"good-2")
    broker.poison.add(b"poison")
    broker.up = True
    assert wait_until(lambda: not t.spooling)
    assert values(broker) == [b"good-1", b"good-2"]
    rejected = [r.value for s in list_segments(tmp_path / "outbox" / "rejected") for r in read_segment(s)]
    assert rejected == [b"poison"]
    t.close()


def test_outbox_disk_failure_raises_and_keeps_the_messages(tmp_path: Path) -> None:
    broker = FakeBroker()
    broker.up = False
    (tmp_path / "outbox").write_text("not a folder")
    t = make(tmp_path, broker)
    with pytest.raises(TransportError):
        t.send("topic", b"run", b"0")
    (tmp_path / "outbox").unlink()
    t.send("topic", b"run", b"0")  # the emitter retries the refused message
    broker.up = True
    assert wait_until(lambda: not t.spooling)
    assert values(broker) == [b"0"]
    t.close()
