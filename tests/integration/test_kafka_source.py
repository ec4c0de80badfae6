"""KafkaSource against the real broker: joining with the topic's metadata, and replacing a consumer
whose rebalance never assigns (a kafka-python 3.0.12 hang) without losing or repeating a message."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from consumers.source import KafkaSource
from consumers.testing import create_topic, produce, wait_until


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def _second_member(bootstrap: str, topic: str) -> Iterator[None]:
    """Another member of the group, polling in a thread: its join revokes the first member's partitions."""
    other = KafkaSource(bootstrap=bootstrap, topic=topic, group=topic, on_revoke=lambda: None)
    stop = threading.Event()
    helper = threading.Thread(target=lambda: [other.poll(10, 0.2) for _ in iter(stop.is_set, True)])
    helper.start()
    try:
        yield
    finally:
        stop.set()
        helper.join(10)
        other.close()


def _poll_all(source: KafkaSource, count: int) -> list[Any]:
    got: list[Any] = []
    wait_until(lambda: got.extend(source.poll(100, 0.2)) or len(got) >= count, timeout_s=60,
               what=f"{count} messages")
    return got


def test_the_first_join_assigns_every_partition(kafka_bootstrap: str, unique_name: str) -> None:
    create_topic(kafka_bootstrap, unique_name, 4)
    source = KafkaSource(bootstrap=kafka_bootstrap, topic=unique_name, group=unique_name, on_revoke=lambda: None)
    try:
        wait_until(lambda: source.poll(10, 0.2) is not None and source.ready, timeout_s=30, what="an assignment")
        assert {tp.partition for tp in source._consumer.assignment()} == {0, 1, 2, 3}
    finally:
        source.close()


def test_a_stalled_rebalance_gets_a_new_consumer_that_resumes_from_the_commit(kafka_bootstrap: str,
                                                                               unique_name: str) -> None:
    create_topic(kafka_bootstrap, unique_name, 2)
    produce(kafka_bootstrap, unique_name, [(b"k%d" % i, b"v%d" % i) for i in range(10)])
    clock = _Clock()
    source = KafkaSource(bootstrap=kafka_bootstrap, topic=unique_name, group=unique_name, on_revoke=lambda: None,
                         join_stall_s=5.0, monotonic=clock)
    try:
        first = _poll_all(source, 10)
        source.commit()
        old = source._consumer
        # Pretend a rebalance began long ago and never assigned: the next poll must replace the consumer.
        source._joining_since = clock.now - 6.0
        produce(kafka_bootstrap, unique_name, [(b"k%d" % i, b"v%d" % i) for i in range(10, 15)])
        rest = _poll_all(source, 5)
        assert source._consumer is not old and source._joining_since is None
        assert sorted(m.value for m in first + rest) == sorted(b"v%d" % i for i in range(15))
    finally:
        source.close()


def test_offsets_flushed_during_a_revoke_are_committed_after_the_rebalance(kafka_bootstrap: str,
                                                                           unique_name: str) -> None:
    # kafka-python 3.0.12 refuses a blocking commit inside a rebalance listener; the worker's
    # flush-and-commit on revoke must still leave the group's offsets at what was written.
    create_topic(kafka_bootstrap, unique_name, 2)
    produce(kafka_bootstrap, unique_name, [(None, b"v%d" % i) for i in range(20)])
    box: list[KafkaSource] = []
    source = KafkaSource(bootstrap=kafka_bootstrap, topic=unique_name, group=unique_name,
                         on_revoke=lambda: box[0].commit())  # what Worker.on_revoke does after its flush
    box.append(source)
    try:
        got = _poll_all(source, 20)  # handed out, not committed yet
        assert len(got) == 20
        with _second_member(kafka_bootstrap, unique_name):
            # The second member's join revokes our partitions (our listener commits), then one comes back.
            wait_until(lambda: source.poll(10, 0.2) is not None and len(source._consumer.assignment()) == 1
                       and not source._pending_commit, timeout_s=60, what="the rebalance and the pending commit")
        [mine] = source._consumer.assignment()
        ends: dict[int, int] = {}
        for m in got:
            ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
        assert source._consumer.committed(mine) == ends[mine.partition]
    finally:
        source.close()


def test_rewind_hands_out_the_uncommitted_messages_again(kafka_bootstrap: str, unique_name: str) -> None:
    create_topic(kafka_bootstrap, unique_name, 2)
    produce(kafka_bootstrap, unique_name, [(None, b"v%d" % i) for i in range(20)])
    source = KafkaSource(bootstrap=kafka_bootstrap, topic=unique_name, group=unique_name, on_revoke=lambda: None)
    try:
        first = _poll_all(source, 20)
        source.rewind()
        again = _poll_all(source, 20)
        assert sorted((m.partition, m.offset) for m in again) == sorted((m.partition, m.offset) for m in first)
    finally:
        source.close()


def test_a_batch_dropped_during_a_revoke_is_read_again_when_its_partition_comes_back(kafka_bootstrap: str,
                                                                                     unique_name: str) -> None:
    # What Worker.on_revoke does when ClickHouse cannot take the batch in time: discard and rewind.
    create_topic(kafka_bootstrap, unique_name, 2)
    produce(kafka_bootstrap, unique_name, [(None, b"v%d" % i) for i in range(20)])
    box: list[KafkaSource] = []
    source = KafkaSource(bootstrap=kafka_bootstrap, topic=unique_name, group=unique_name,
                         on_revoke=lambda: box[0].rewind())
    box.append(source)
    try:
        got = _poll_all(source, 20)
        again: list[Any] = []
        with _second_member(kafka_bootstrap, unique_name):
            wait_until(lambda: again.extend(source.poll(10, 0.2)) or len(source._consumer.assignment()) == 1,
                       timeout_s=60, what="the rebalance")
            [mine] = source._consumer.assignment()
            expected = {m.offset for m in got if m.partition == mine.partition}
            # Every dropped message comes back (a second rebalance may hand some out twice: the
            # rows collapse downstream).
            wait_until(lambda: again.extend(source.poll(10, 0.2)) or
                       expected <= {m.offset for m in again if m.partition == mine.partition},
                       timeout_s=30, what="the dropped messages again")
    finally:
        source.close()
