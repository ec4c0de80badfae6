"""KafkaSource against the real broker: joining with the topic's metadata, and replacing a consumer
whose rebalance never assigns (a kafka-python 3.0.12 hang) without losing or repeating a message."""

from __future__ import annotations

from typing import Any

from consumers.source import KafkaSource
from consumers.testing import create_topic, produce, wait_until


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
