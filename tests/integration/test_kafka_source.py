"""KafkaSource (and a Worker on it) against the real broker, with real second group members: joining,
rewinding, and rebalances settled on the worker's thread before the join (issue 12, items 3 and 8)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from consumers.limits import RunLimiter
from consumers.source import KafkaSource
from consumers.testing import FixedCounterLoader, InMemorySink, MemoryDeadLetters, create_topic, produce, wait_until
from consumers.worker import Worker
from schemas import RunLimits, ScalarBatch, decode, encode
from schemas.settings import IngestSettings


@contextlib.contextmanager
def _second_member(bootstrap: str, topic: str) -> Iterator[list[Any]]:
    """Another member of the group, polling (and committing) in a thread: its join revokes the first
    member's partitions. Yields the list of messages it is handed."""
    other = KafkaSource(bootstrap=bootstrap, topic=topic, group=topic, on_revoke=lambda: None)
    got: list[Any] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            got.extend(other.poll(10, 0.2))
            other.commit()

    helper = threading.Thread(target=run)
    helper.start()
    try:
        yield got
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


def _event_messages(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` one-point scalar events over 8 runs (keys spread over the partitions)."""
    out = []
    for i in range(count):
        run_id = f"run{i % 8}"
        event = ScalarBatch(writer_id="w1", seq=i + 1, run_id=run_id, experiment="e", created_ms=1_700_000_000_000,
                            names=["loss"], descriptions=[""], name_idx=[0], steps=[i], times_ms=[1_700_000_000_000],
                            values=[float(i)], text_pos=[], text_values=[])
        out.append((run_id.encode(), encode(event)))
    return out


def _worker(bootstrap: str, topic: str, sink: InMemorySink) -> tuple[Worker, list[str]]:
    """A real Worker on a real KafkaSource; the list records the thread of every on_revoke call."""
    config = IngestSettings(kafka=bootstrap, topic=topic, group=topic, metrics_port=None, flush_interval_s=3600,
                          flush_rows=1_000_000, retry_initial_s=0.05, retry_max_s=0.2)
    threads: list[str] = []
    box: list[Worker] = []

    def on_revoke() -> None:
        threads.append(threading.current_thread().name)
        box[0].on_revoke()

    source = KafkaSource(bootstrap=bootstrap, topic=topic, group=topic, on_revoke=on_revoke,
                         session_timeout_ms=config.session_timeout_ms)
    worker = Worker(source=source, sink=sink, limiter=RunLimiter(RunLimits(), FixedCounterLoader()),
                    dead_letters=MemoryDeadLetters(), config=config)
    box.append(worker)
    return worker, threads


def _settle(worker: Worker) -> None:
    """Step until the worker owns partitions and its group has been quiet for 2 s."""
    wait_until(lambda: worker.step() is not None and worker.source.ready, timeout_s=60, what="an assignment")
    quiet_until = time.monotonic() + 2.0
    while time.monotonic() < quiet_until:
        worker.step()


def _consume(worker: Worker, count: int) -> None:
    """Step until the worker holds ``count`` messages, none flushed (its flush interval is an hour).

    Counted in messages, not ``buffered_rows``: that also counts a row per new run (40 rows after 32 of
    these messages), and a member that joined then could take messages this one had not read yet.
    """
    consumed = [0]

    def step() -> bool:
        consumed[0] += worker.step()
        return consumed[0] >= count

    wait_until(step, timeout_s=60, what=f"{count} messages consumed")
    assert consumed[0] == count


def _worker_holding_40(bootstrap: str, topic: str) -> tuple[Worker, InMemorySink, list[str]]:
    """A settled worker on a new 2-partition topic, holding its 40 messages consumed and not flushed."""
    create_topic(bootstrap, topic, 2)
    sink = InMemorySink()
    worker, threads = _worker(bootstrap, topic, sink)
    try:
        _settle(worker)
        produce(bootstrap, topic, _event_messages(40))
        _consume(worker, 40)
    except BaseException:
        worker.source.close()
        raise
    return worker, sink, threads


def _committed(source: KafkaSource, topic: str, partitions: int) -> dict[int, int | None]:
    from kafka import TopicPartition

    return {p: source._consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}


def test_a_rebalance_flushes_and_commits_on_the_workers_thread_before_the_partitions_move(
        kafka_bootstrap: str, unique_name: str) -> None:
    # Issue 12, items 3 and 8: the flush used to run inside kafka-python's rebalance listener, on its IO
    # thread, and the commit of a partition that moved was dropped, so its next owner read the batch again.
    worker, sink, threads = _worker_holding_40(kafka_bootstrap, unique_name)
    try:
        assert sink.rows("metric_scalars") == []
        with _second_member(kafka_bootstrap, unique_name) as theirs:
            wait_until(lambda: worker.step() is not None and len(worker.source._consumer.assignment()) == 1,
                       timeout_s=60, what="the rebalance")
            assert threads and set(threads) == {threading.current_thread().name}
            assert sorted(r["step"] for r in sink.rows("metric_scalars")) == list(range(40))
            # Both partitions were committed before either moved: the second member starts where we stopped.
            assert sum(offset or 0 for offset in _committed(worker.source, unique_name, 2).values()) == 40
            produce(kafka_bootstrap, unique_name, _event_messages(60)[40:])
            wait_until(lambda: worker.step() is not None and worker.flush() and
                       len(sink.rows("metric_scalars")) + len(theirs) >= 60, timeout_s=60, what="the new messages")
            assert len(sink.rows("metric_scalars")) + len(theirs) == 60  # nothing of the first 40 read again
    finally:
        worker.source.close()


def test_a_rejoin_announced_between_the_check_and_the_poll_waits_for_the_batch(
        kafka_bootstrap: str, unique_name: str) -> None:
    # The heartbeat that announces a rejoin lands on kafka-python's IO thread at any moment: on a loaded
    # machine often between the source's check and consumer.poll, which then started the join; from then
    # on kafka-python refused the commit (the member was rebalancing) and the next owners read the batch
    # again. Here that moment is forced: the rejoin is pending when consumer.poll runs without the check.
    worker, sink, threads = _worker_holding_40(kafka_bootstrap, unique_name)
    try:
        with _second_member(kafka_bootstrap, unique_name):
            wait_until(worker.source._rebalance_pending, timeout_s=60, what="the rejoin announced")
            assert worker.source._poll_once(100, 0.0) == {}  # what follows a check that came a moment too early
            assert sink.rows("metric_scalars") == []  # nothing settled yet
            wait_until(lambda: worker.step() is not None and len(worker.source._consumer.assignment()) == 1,
                       timeout_s=60, what="the rebalance")
            assert threads and set(threads) == {threading.current_thread().name}
            assert sorted(r["step"] for r in sink.rows("metric_scalars")) == list(range(40))
            assert sum(offset or 0 for offset in _committed(worker.source, unique_name, 2).values()) == 40
    finally:
        worker.source.close()


def test_a_rebalance_while_clickhouse_refuses_keeps_the_member_and_drops_the_batch_within_the_budget(
        kafka_bootstrap: str, unique_name: str) -> None:
    # A slow sink used to hold the rebalance listener (and the heartbeats) for 20 s against a 10 s
    # session timeout: the member was evicted mid-flush. Now the flush ends within the budget
    # (half the session timeout), the batch is dropped uncommitted and read again, the member stays.
    worker, sink, threads = _worker_holding_40(kafka_bootstrap, unique_name)
    try:
        member = worker.source._consumer._coordinator._generation.member_id
        sink.down = True
        with _second_member(kafka_bootstrap, unique_name) as theirs:
            flusher = threading.Thread(target=worker.flush, name="worker")  # retries with the source paused
            flusher.start()
            flusher.join(30)
            assert not flusher.is_alive()  # gave up within the budget: the member is not evicted (below)
            assert set(threads) == {"worker"} and worker.buffered_rows == 0 and sink.rows("metric_scalars") == []
            sink.down = False
            wait_until(lambda: worker.step() is not None and len(worker.source._consumer.assignment()) == 1,
                       timeout_s=30, what="the rebalance")
            assert worker.source._consumer._coordinator._generation.member_id == member  # never evicted
            wait_until(lambda: worker.step() is not None and worker.flush() and
                       len(sink.rows("metric_scalars")) + len(theirs) >= 40, timeout_s=60,
                       what="every message read again by its owner")
            mine = {r["step"] for r in sink.rows("metric_scalars")}
            assert mine | {decode(m.value).steps[0] for m in theirs} == set(range(40))
    finally:
        worker.source.close()
