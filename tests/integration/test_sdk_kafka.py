"""The SDK against a real Kafka broker: per-run order, exactly once, retries, outages, fork and threads.

Tests that stop a broker use the session's private instance (``private_kafka``)
and start it again before they end; the rest use the shared broker with a
topic of their own.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from producers import Experiment, Workspace
from producers.spool_tools import replay, spool_status
from schemas import RunStarted, RunStatusChanged, ScalarBatch, TagsSet, decode
from stack import KafkaInstance

# kafka-python leaves sockets to refused connections for the garbage collector
# while a broker is down; that is its business, not a failure of ours.
OUTAGE_WARNINGS = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_kafka_garbage() -> Any:
    """Collect kafka-python's leftovers inside the test, where the marks above apply, not at session end.

    kafka-python logs connection errors with the exception as an argument; a
    captured record keeps its traceback, and with it the unclosed socket, alive
    until pytest drops the records. Its logs are not what these tests check.
    """
    kafka_logger = logging.getLogger("kafka")
    level = kafka_logger.level
    kafka_logger.setLevel(logging.CRITICAL)
    yield
    kafka_logger.setLevel(level)
    gc.collect()


def consume_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[int, int, bytes, Any]]:
    """Every message of ``topic`` as (partition, offset, key, decoded event), in partition/offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                out.extend((tp.partition, r.offset, r.key, decode(r.value)) for r in records)
        return sorted(out, key=lambda m: (m[0], m[1]))
    finally:
        consumer.close()


def check_exactly_once_in_order(messages: list[tuple[int, int, bytes, Any]]) -> dict[str, list[Any]]:
    """Each (writer_id, seq) once; each run in one partition with its seqs increasing per writer. Events by run."""
    identities = Counter((m[3].writer_id, m[3].seq) for m in messages)
    duplicated = {k: n for k, n in identities.items() if n > 1}
    assert not duplicated, f"duplicate (writer_id, seq): {list(duplicated)[:5]}"
    by_run: dict[str, list[Any]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for partition, _, key, event in messages:
        assert key == event.run_id.encode()
        by_run[event.run_id].append(event)
        partitions[event.run_id].add(partition)
    for run_id, events in by_run.items():
        assert len(partitions[run_id]) == 1, f"run {run_id} spread over partitions {partitions[run_id]}"
        per_writer: dict[str, list[int]] = defaultdict(list)
        for e in events:
            per_writer[e.writer_id].append(e.seq)
        for writer, seqs in per_writer.items():
            assert seqs == sorted(seqs), f"run {run_id}, writer {writer}: out of order"
    return by_run


def scalar_values(events: list[Any], name: str) -> list[float]:
    return [v for b in events if isinstance(b, ScalarBatch) for i, _, _, v in zip(*b.point_columns())
            if b.names[i] == name]


def test_per_run_order_and_exactly_once(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    ws = Workspace(kafka=kafka_bootstrap, topic=unique_name, home=tmp_path, topic_partitions=3,
                   install_signal_handlers=False, linger_ms=10)
    exp = Experiment(ws, "it")
    runs = [exp.start_logging(display_name=f"r{k}") for k in range(3)]
    for i in range(2000):
        for k, run in enumerate(runs):
            run.log("loss", float(i * 10 + k))
        if i % 500 == 0:
            for run in runs:
                run.tag(f"at{i}")
    for run in runs:
        run.complete()
    producer = ws.emitter._transport._kafka._producer  # type: ignore[union-attr]
    assert producer.config["enable_idempotence"] and producer.config["acks"] == -1
    assert producer.config["compression_type"] == "lz4" and not producer.config["allow_auto_create_topics"]
    ws.close()
    messages = consume_all(kafka_bootstrap, unique_name)
    assert {m[0] for m in messages} <= {0, 1, 2}
    by_run = check_exactly_once_in_order(messages)
    for k, run in enumerate(runs):
        events = by_run[run.id]
        assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunStatusChanged)
        assert events[-1].status == "Completed"
        assert scalar_values(events, "loss") == [float(i * 10 + k) for i in range(2000)]
        assert [e.tags for e in events if isinstance(e, TagsSet)] == [{f"at{i}": None} for i in (0, 500, 1000, 1500)]
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    assert consumer.partitions_for_topic(unique_name) == {0, 1, 2}  # created by the SDK, as configured
    consumer.close()


def test_threads_and_fork_with_a_real_broker(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    ws = Workspace(kafka=kafka_bootstrap, topic=unique_name, home=tmp_path, install_signal_handlers=False,
                   linger_ms=60_000)
    run = Experiment(ws, "it").start_logging()
    for i in range(100):
        run.log("before_fork", float(i))  # still buffered when the process forks
    parent_writer = ws.emitter.writer_id
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for i in range(300):
                run.log("child", float(i))
            code = 0 if ws.flush(30) else 2
        finally:
            os._exit(code)

    def work(k: int) -> None:
        for i in range(3000):
            run.log(f"thread{k}", float(i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.complete()
    ws.close()
    by_run = check_exactly_once_in_order(consume_all(kafka_bootstrap, unique_name))
    events = by_run[run.id]
    counts: Counter[tuple[str, str]] = Counter()
    for b in events:
        if isinstance(b, ScalarBatch):
            counts.update((b.writer_id, b.names[i]) for i in b.point_columns()[0])
    child_writers = {w for w, _ in counts} - {parent_writer}
    assert len(child_writers) == 1
    child = child_writers.pop()
    assert counts[(parent_writer, "before_fork")] == 100 and counts[(child, "before_fork")] == 0
    assert counts[(child, "child")] == 300
    for k in range(4):
        assert scalar_values([e for e in events if e.writer_id == parent_writer], f"thread{k}") == [
            float(i) for i in range(3000)]


def _log_through_outage(ws: Workspace, instance: KafkaInstance, *, down_s: float, runs: int = 2,
                        per_phase: int = 3000) -> tuple[list[Any], list[int]]:
    exp = Experiment(ws, "outage")
    handles = [exp.start_logging() for _ in range(runs)]
    counter = [0]

    def log_phase(pause: float) -> None:
        for _ in range(per_phase):
            for run in handles:
                run.log("v", float(counter[0]))
            counter[0] += 1
            if pause and counter[0] % 100 == 0:
                time.sleep(pause)

    log_phase(0.001)
    assert ws.flush(30)
    instance.stop()
    try:
        deadline = time.monotonic() + down_s
        while time.monotonic() < deadline:
            log_phase(0.002)
        handles[0].tag("during-outage")
    finally:
        instance.start()
    log_phase(0.001)
    for run in handles:
        run.complete()
    return handles, list(range(counter[0]))


@pytest.mark.slow
@OUTAGE_WARNINGS[0]
@OUTAGE_WARNINGS[1]
def test_outage_spools_and_replays_every_point_exactly_once(private_kafka: KafkaInstance, unique_name: str,
                                                            tmp_path: Path) -> None:
    ws = Workspace(kafka=private_kafka.bootstrap, topic=unique_name, home=tmp_path, install_signal_handlers=False,
                   stall_timeout_s=1.0, connect_timeout_s=2.0, linger_ms=20, flush_timeout_s=60)
    handles, expected = _log_through_outage(ws, private_kafka, down_s=4.0)
    transport = ws.emitter._transport
    assert transport.trips >= 1  # type: ignore[union-attr]
    assert ws.flush(60)
    # flush() is satisfied by the outbox's fsync; switching back to Kafka is the
    # replayer's job, after its reconnect backoff.
    deadline = time.monotonic() + 60
    while transport.spooling and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.1)
    assert not transport.spooling  # type: ignore[union-attr]
    ws.close()
    assert spool_status(tmp_path).outbox.records == 0
    by_run = check_exactly_once_in_order(consume_all(private_kafka.bootstrap, unique_name))
    for run in handles:
        events = by_run[run.id]
        assert scalar_values(events, "v") == [float(i) for i in expected]
        assert events[-1].status == "Completed"
    assert any(isinstance(e, TagsSet) for e in by_run[handles[0].id])


@pytest.mark.slow
@OUTAGE_WARNINGS[0]
@OUTAGE_WARNINGS[1]
def test_idempotent_retries_across_a_short_broker_restart(private_kafka: KafkaInstance, unique_name: str,
                                                          tmp_path: Path) -> None:
    # A stall timeout longer than the restart: kafka-python's own idempotent retries
    # carry the batches across it, without the outbox.
    ws = Workspace(kafka=private_kafka.bootstrap, topic=unique_name, home=tmp_path, install_signal_handlers=False,
                   stall_timeout_s=120.0, connect_timeout_s=5.0, linger_ms=20, flush_timeout_s=120)
    handles, expected = _log_through_outage(ws, private_kafka, down_s=1.0, runs=1, per_phase=1000)
    assert ws.flush(120)
    assert ws.emitter._transport.trips == 0  # type: ignore[union-attr]
    ws.close()
    by_run = check_exactly_once_in_order(consume_all(private_kafka.bootstrap, unique_name))
    assert scalar_values(by_run[handles[0].id], "v") == [float(i) for i in expected]


@OUTAGE_WARNINGS[0]
@OUTAGE_WARNINGS[1]
def test_spool_replay_sends_what_a_dead_process_left(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    # A process whose broker never answered: everything lands in the outbox and stays there.
    dead = Workspace(kafka="127.0.0.1:1", topic=unique_name, home=tmp_path, install_signal_handlers=False,
                     stall_timeout_s=0.2, connect_timeout_s=0.2, exit_timeout_s=0.5)
    run = Experiment(dead, "crashed").start_logging()
    for i in range(5000):
        run.log("v", float(i))
    run.complete()
    dead.close()
    before = spool_status(tmp_path)
    assert before.pending_replay > 0 and not before.outbox.live_writers
    progress = []
    result = replay(tmp_path, kafka_bootstrap, unique_name, progress=progress.append, partitions=2)
    assert result.records == before.pending_replay and result.segments == len(before.outbox.segments)
    assert progress and progress[-1].done and progress[-1].total_records == result.records
    assert spool_status(tmp_path).outbox.records == 0
    assert replay(tmp_path, kafka_bootstrap, unique_name).records == 0  # nothing twice
    by_run = check_exactly_once_in_order(consume_all(kafka_bootstrap, unique_name))
    events = by_run[run.id]
    assert scalar_values(events, "v") == [float(i) for i in range(5000)]
    assert isinstance(events[0], RunStarted) and events[-1].status == "Completed"
