import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from schemas.settings import IngestSettings
from consumers.limits import RunLimiter
from consumers.message import RawMessage
from consumers.metrics import IngestMetrics
from consumers.testing import FixedCounterLoader, InMemorySink, ListSource, MemoryDeadLetters
from consumers.worker import Worker
from store.errors import sink_error
from schemas import RunLimits, encode

from . import factory as f


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(messages=(), *, limits=RunLimits(), sink=None, flush_rows=10_000, **cfg):
    clock = FakeClock()
    config = IngestSettings(flush_rows=flush_rows, retry_initial_s=0.001, retry_max_s=0.002, metrics_port=None, **cfg)
    registry = CollectorRegistry()
    worker = Worker(source=ListSource(messages), sink=sink or InMemorySink(),
                    limiter=RunLimiter(limits, FixedCounterLoader()), dead_letters=MemoryDeadLetters(),
                    config=config, metrics=IngestMetrics(registry), monotonic=clock)
    return worker, clock, registry


def pump(worker, clock, rounds=50):
    for _ in range(rounds):
        worker.step()
        clock.t += 1
    assert worker.flush()


def points(sink):
    return sorted((r["run_id"], r["name"], r["step"]) for r in sink.rows("metric_scalars"))


def test_flushes_by_time_and_commits_after_the_sink_accepted():
    msgs = [f.message(f.started()), f.message(f.scalars(points=4)), f.message(f.status())]
    worker, clock, _ = make(msgs)
    worker.step()
    assert worker.source.committed == 0 and worker.sink.rows("metric_scalars") == []
    clock.t += 1
    worker.step()
    assert worker.source.committed == 3
    assert len(worker.sink.rows("metric_scalars")) == 4
    assert [t for t, _ in worker.sink.writes][-1] == "writer_progress"


def test_flushes_by_rows():
    msgs = [f.message(f.scalars(points=6)) for _ in range(3)]
    worker, clock, _ = make(msgs, flush_rows=10, poll_max_records=1)
    worker.step()
    assert worker.source.committed == 0
    worker.step()
    assert worker.source.committed == 2


def test_sink_outage_pauses_retries_and_resumes_without_loss():
    msgs = [f.message(f.scalars("r", points=2, start_step=2 * i)) for i in range(20)]
    sink = InMemorySink()
    worker, clock, registry = make(msgs, sink=sink, poll_max_records=5)
    sink.fail_next = 7
    pump(worker, clock)
    assert worker.source.committed == 20
    assert points(sink) == sorted(("r", "loss", s) for s in range(40))
    assert registry.get_sample_value("runstream_clickhouse_insert_errors_total") == 7


def test_partial_batch_write_is_not_repeated():
    sink = InMemorySink()
    worker, clock, _ = make([f.message(f.started()), f.message(f.scalars())], sink=sink)
    worker.step()
    sink.fail_next = 0
    original = sink.write
    calls = []

    def flaky(table, columns):
        calls.append(table)
        if table == "metric_scalars" and calls.count(table) == 1:
            raise sink_error("boom")
        original(table, columns)

    sink.write = flaky
    assert worker.flush()
    assert calls.count("runs") == 1 and calls.count("metric_scalars") == 2
    assert len(sink.rows("runs")) == 1


def test_stop_during_outage_gives_up_without_commit():
    sink = InMemorySink()
    worker, clock, _ = make([f.message(f.scalars())], sink=sink, shutdown_timeout_s=0.05)
    worker.step()
    sink.down = True
    worker._monotonic = __import__("time").monotonic
    worker.stop()
    assert worker.shutdown() is False
    assert worker.source.committed == 0


def test_hostile_bytes_are_dead_lettered_and_good_events_land():
    rng = random.Random(7)
    good = encode(f.scalars("r", points=5))
    hostile = [b"", os.urandom(100), good[:20], good[: len(good) - 3], b"\xc3\x01" + b"\x00" * 8 + good[10:],
               rng.randbytes(900 * 1024), good + b"tail"]
    msgs = []
    for h in hostile:
        msgs.append(f.message(f.scalars("r", points=1, start_step=len(msgs))))
        msgs.append(RawMessage("runstream.events/0", 0, 10_000 + len(msgs), b"r", h))
    worker, clock, registry = make(msgs)
    pump(worker, clock)
    assert worker.source.committed == len(msgs)
    assert len(worker.sink.rows("metric_scalars")) == len(hostile)
    assert len(worker.dead_letters.letters) == len(hostile)
    rejected = worker.sink.rows("rejected_events")
    assert len(rejected) == len(hostile)
    assert {r["reason"] for r in rejected} <= {"empty", "bad_marker", "truncated", "unknown_fingerprint",
                                               "trailing_bytes", "malformed"}
    assert all(r["run_id"] == "r" for r in rejected)


@pytest.mark.parametrize("packed, change", [
    (False, dict(steps=[0])), (False, dict(text_pos=[9], text_values=["x"])), (False, dict(name_idx=[0, 5, 0])),
    (True, dict(packed_steps=b"\x01" * 8)), (True, dict(packed_values=b"\x01" * 5)),
    (True, dict(packed_name_idx=b"\x05\x00\x00\x00" * 3)),
])
def test_inconsistent_scalar_batches_never_stop_the_worker(packed, change):
    from dataclasses import replace

    bad = replace(f.scalars("r", points=3, packed=packed), **change)
    msgs = [f.message(bad), f.message(f.scalars("r", names=["ok"]))]
    worker, clock, _ = make(msgs)
    pump(worker, clock)
    assert worker.source.committed == 2
    assert {r["name"] for r in worker.sink.rows("metric_scalars")} >= {"ok"}
    assert worker.dead_letters.letters


def test_51st_metric_name_rejected_and_the_first_50_keep_every_point():
    msgs = [f.message(f.scalars("r", names=[f"m{i}" for i in range(b * 10, b * 10 + 10)], points=3))
            for b in range(5)]
    msgs.append(f.message(f.scalars("r", names=["m0", "m51", "m49"], points=4, start_step=3)))
    worker, clock, registry = make(msgs)
    pump(worker, clock)
    rows = worker.sink.rows("metric_scalars")
    assert len(rows) == 50 * 3 + 2 * 4
    assert "m51" not in {r["name"] for r in rows}
    rejected = worker.sink.rows("rejected_events")
    assert [(r["reason"], r["item"]) for r in rejected] == [("too_many_metric_names", 1)]
    assert "m51" in rejected[0]["detail"]
    assert registry.get_sample_value("runstream_events_rejected_total", {"reason": "too_many_metric_names"}) == 4
    names = worker.sink.rows("metric_names")
    assert len(names) == 50


def test_writer_progress_covers_rejected_events_too():
    msgs = [f.message(f.scalars("r", seq=1)), f.message(f.list_logged("r", name="", seq=2))]
    worker, clock, _ = make(msgs)
    pump(worker, clock)
    progress = worker.sink.rows("writer_progress")
    assert max(p["seq"] for p in progress if p["run_id"] == "r") == 2


def test_a_redelivery_after_a_crash_produces_identical_keys():
    from store.errors import StoreError

    class DiesBeforeProgress(InMemorySink):
        def write(self, table, columns):
            if table == "writer_progress":
                raise sink_error("the worker was killed here", retriable=True)
            super().write(table, columns)

    event = f.scalars("r", names=["a", "b"], points=3)
    sink = DiesBeforeProgress()
    first, _, _ = make([f.message(event)], sink=sink)
    first.step()
    with pytest.raises(StoreError):
        first._write_batch()  # the points are in, writer_progress is not: nothing says they were handled
    sink.__class__ = InMemorySink
    second, clock, _ = make([f.message(event)], sink=sink)
    pump(second, clock)
    keys = [(r["writer_id"], r["seq"], r["idx"]) for r in sink.rows("metric_scalars")]
    assert len(keys) == 12 and len(set(keys)) == 6  # written twice, identical keys: they collapse


def test_a_message_already_handled_is_skipped_not_counted_again():
    # Issue 12, item 4: by identity (writer, seq): a copy at or below the writer's progress is a re-delivery.
    event = f.scalars("r", names=["a"], points=3)
    worker, clock, _ = make([f.message(event), f.message(event)], limits=RunLimits(max_rows_per_metric=4))
    pump(worker, clock)
    assert len(worker.sink.rows("metric_scalars")) == 3 and worker.sink.rows("rejected_events") == []
    assert worker.source.committed == 2
    from consumers.limits import RunCounters

    stored = RunCounters(names={"a": "scalar"}, rows={"a": 3}, progress={"w1": event.seq})
    again, clock, _ = make([f.message(event), f.message(f.scalars("r", names=["a"], points=2))],
                           limits=RunLimits(max_rows_per_metric=4))
    again.limiter._loader.counters["r"] = stored
    pump(again, clock)
    assert [r["step"] for r in again.sink.rows("metric_scalars")] == [0]  # the new batch's first point fits
    assert [r["reason"] for r in again.sink.rows("rejected_events")] == ["too_many_rows"]


def test_metrics_are_reported():
    worker, clock, registry = make([f.message(f.started()), f.message(f.scalars(points=5))])
    pump(worker, clock)
    assert registry.get_sample_value("runstream_events_consumed_total", {"event_type": "scalars"}) == 1
    assert registry.get_sample_value("runstream_points_written_total", {"table": "metric_scalars"}) == 5
    assert registry.get_sample_value("runstream_end_to_end_latency_seconds_count") == 2
    assert registry.get_sample_value("runstream_active_runs") is not None


def test_on_revoke_flushes_and_commits():
    # The worker's half only; rebalances themselves are tested against the real broker with a second
    # group member in tests/integration/test_kafka_source.py.
    worker, clock, _ = make([f.message(f.scalars())])
    worker.step()
    assert worker.source.committed == 0
    worker.on_revoke()
    assert worker.source.committed == 1
    assert len(worker.sink.rows("metric_scalars")) == 3


def test_on_revoke_with_the_sink_down_drops_the_batch_for_the_next_owner():
    sink = InMemorySink()
    worker, clock, _ = make([f.message(f.scalars())], sink=sink, rebalance_flush_timeout_s=0.01)
    worker._monotonic = __import__("time").monotonic
    worker.step()
    sink.down = True
    worker.on_revoke()
    assert worker.source.committed == 0 and worker.source.position == 0 and worker.buffered_rows == 0
    assert not worker.source.paused


def test_a_rebalance_announced_during_a_flush_ends_it_within_the_budget():
    # The source's idle() is where a pending rebalance is noticed while the worker retries a write.
    sink = InMemorySink()
    worker, clock, _ = make([f.message(f.scalars())], sink=sink, session_timeout_ms=10_000)
    source = worker.source
    calls = []

    def idle():
        calls.append(clock.t)
        clock.t += 1.0
        worker.on_revoke()

    source.idle = idle
    worker.step()
    sink.down = True
    assert worker.flush() is False  # without a deadline it would retry for ever
    assert worker.buffered_rows == 0 and source.position == 0 and source.committed == 0
    assert calls[-1] - calls[0] <= 5.0  # rebalance_flush_timeout_s, below the 10 s session timeout


def test_counter_store_down_blocks_processing_until_it_answers():
    worker, clock, _ = make([f.message(f.scalars("r"))])
    worker.limiter._loader.down = True
    worker._monotonic = __import__("time").monotonic
    worker.stop()  # so the retry loop gives up at the (short) shutdown deadline
    worker._stop_deadline = worker._monotonic() + 0.02
    worker.step()
    assert worker.buffered_rows == 0 and worker.source.position == 0


def test_memory_stays_bounded_while_the_sink_is_down():
    import threading
    import time

    from consumers.testing import wait_until

    sink = InMemorySink()
    msgs = [f.message(f.scalars("r", points=10, start_step=10 * i)) for i in range(1000)]
    worker, clock, _ = make(msgs, sink=sink, flush_rows=50, poll_max_records=10)
    sink.down = True
    worker._monotonic = time.monotonic
    t = threading.Thread(target=worker.run)
    t.start()
    try:
        wait_until(lambda: worker.source.paused, timeout_s=30, interval_s=0.01, what="the source to pause")
        for _ in range(20):  # many retries later, still nothing more was read
            time.sleep(0.01)
            assert worker.source.position <= 20 and worker.buffered_rows <= 200
        sink.down = False
        wait_until(lambda: worker.source.committed > 0 and not worker.source.paused, timeout_s=30, interval_s=0.01,
                   what="the worker to resume")
    finally:
        worker.stop()
        t.join(timeout=30)
    assert not t.is_alive()
    assert worker.source.committed == worker.source.position


def test_flushes_by_bytes():
    msgs = [f.message(f.chunk(data=b"x" * 600)) for _ in range(4)]
    worker, clock, _ = make(msgs, flush_bytes=1000, poll_max_records=1)
    worker.step()
    assert worker.source.committed == 0
    worker.step()
    assert worker.source.committed == 2


def test_rows_the_server_refuses_as_invalid_are_isolated_and_dead_lettered():

    class Picky(InMemorySink):
        def write(self, table, columns):
            if table == "metric_scalars" and "poison" in columns["name"]:
                err = sink_error("Code: 53. Type mismatch")
                err.retriable = False
                raise err
            super().write(table, columns)

    sink = Picky()
    msgs = [f.message(f.scalars("r", names=["ok"], points=2)), f.message(f.scalars("r", names=["poison"])),
            f.message(f.scalars("r", names=["ok"], points=2, start_step=2))]
    worker, clock, registry = make(msgs, sink=sink)
    pump(worker, clock)
    assert worker.source.committed == 3
    assert sorted(r["step"] for r in sink.rows("metric_scalars")) == [0, 1, 2, 3]
    assert [l.reason for l in worker.dead_letters.letters] == ["sink_rejected"]
    assert worker.dead_letters.letters[0].message is msgs[1]
    assert [r["reason"] for r in sink.rows("rejected_events")] == ["sink_rejected"]
    assert registry.get_sample_value("runstream_dlq_messages_total", {"reason": "sink_rejected"}) == 1


class _PickySink(InMemorySink):
    """Refuses, as invalid, any metric_scalars batch holding the name "poison"; ``fail_step_2`` times a
    retriable failure of a write holding step 2 (a per-message write after the poison one)."""

    def __init__(self, fail_step_2: int = 0) -> None:
        super().__init__()
        self.fail_step_2 = fail_step_2

    def write(self, table, columns):
        if table == "metric_scalars" and "poison" in columns["name"]:
            raise sink_error("Code: 53. Type mismatch", retriable=False)
        if table == "metric_scalars" and self.fail_step_2 and list(columns["step"]) == [2, 3]:
            self.fail_step_2 -= 1
            raise sink_error("Code: 210. Connection refused", retriable=True)
        super().write(table, columns)


class _FlakyDeadLetters(MemoryDeadLetters):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def send(self, letters):
        from consumers.errors import DeadLetterError

        if self.failures:
            self.failures -= 1
            raise DeadLetterError("dead-letter topic unreachable")
        super().send(letters)


@pytest.mark.parametrize("case", ["dead_letters_fail_once", "later_message_write_fails_once"])
def test_a_refused_message_is_never_committed_without_its_dead_letter(case):
    # Issue 12, item 2: the refused message used to be marked handled before its dead letter was sent, so a
    # failed send (or a retriable failure of a later per-message write) committed it with no trace at all.
    sink = _PickySink(fail_step_2=1 if case == "later_message_write_fails_once" else 0)
    msgs = [f.message(f.scalars("r", names=["ok"], points=2)), f.message(f.scalars("r", names=["poison"])),
            f.message(f.scalars("r", names=["ok"], points=2, start_step=2))]
    worker, clock, registry = make(msgs, sink=sink)
    worker.dead_letters = _FlakyDeadLetters(1 if case == "dead_letters_fail_once" else 0)
    pump(worker, clock)
    assert worker.source.committed == 3
    assert [(l.reason, l.message) for l in worker.dead_letters.letters] == [("sink_rejected", msgs[1])]
    assert [r["reason"] for r in sink.rows("rejected_events")] == ["sink_rejected"]
    assert sorted(r["step"] for r in sink.rows("metric_scalars")) == [0, 1, 2, 3]
    assert registry.get_sample_value("runstream_dlq_messages_total", {"reason": "sink_rejected"}) == 1


_VALID = [encode(e) for e in (f.scalars("r", points=3, text={1: "t"}), f.table("r"), f.row("r", x=1, y="s"),
                               f.started("r"), f.logs("r"), f.chunk("r"), f.image("r"), f.list_logged("r"))]


@st.composite
def _hostile(draw):
    base = draw(st.sampled_from(_VALID))
    kind = draw(st.sampled_from(["random", "flip", "cut", "extend"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    data = bytearray(base)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 5))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    return bytes(data) + draw(st.binary(min_size=1, max_size=20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_hostile(), min_size=1, max_size=8))
def test_no_bytes_crash_or_stall_the_worker(values):
    msgs = [RawMessage("runstream.events/0", 0, i, b"r", v) for i, v in enumerate(values)]
    msgs.append(f.message(f.scalars("r", names=["sentinel"], points=1)))
    worker, clock, _ = make(msgs)
    pump(worker, clock, rounds=3)
    assert worker.source.committed == len(msgs)
    assert "sentinel" in {r["name"] for r in worker.sink.rows("metric_scalars")}


def test_an_ended_run_tagged_later_is_not_active_again():
    import time

    now = int(time.time() * 1000)
    msgs = [f.message(f.started("r", created_ms=now)), f.message(f.heartbeat("r", created_ms=now)),
            f.message(f.started("live", created_ms=now)), f.message(f.status("r", created_ms=now)),
            f.message(f.tags("r", {"best": None}, created_ms=now)), f.message(f.scalars("r", created_ms=now))]
    worker, clock, registry = make(msgs)
    pump(worker, clock)
    assert registry.get_sample_value("runstream_active_runs") == 1  # "live" only


def test_a_long_backoff_keeps_the_source_alive_and_notices_a_rebalance_within_a_slice():
    sink = InMemorySink()
    worker, clock, _ = make([f.message(f.scalars())], sink=sink)
    worker.config = IngestSettings(retry_initial_s=2.0, retry_max_s=2.0, metrics_port=None)
    waits = []
    worker._stop.wait = waits.append  # no real sleeping; record each wait instead
    idles = []

    def idle():
        idles.append(clock.t)
        if len(idles) == 2:
            worker.on_revoke()  # announced during the first 2 s backoff
        clock.t += 0.5

    worker.source.idle = idle
    worker.step()
    sink.down = True
    assert worker.flush() is False
    assert waits and max(waits) <= 0.5  # a 2 s backoff is waited in 0.5 s slices, idle() between them
    assert idles[-1] - idles[1] <= 5.0  # announced at the 2nd idle: the batch went within the 5 s budget
    assert worker.buffered_rows == 0  # dropped for the rebalance, read again by the next owner


def test_a_topic_holding_both_scalar_versions_ingests_every_point_once():
    # A sweep upgraded half way: version-1 (lists) and version-2 (packed) batches of the same runs.
    msgs = [f.message(f.scalars("r1", names=["loss", "acc"], points=3, seq=1)),
            f.message(f.scalars("r1", names=["loss", "acc"], points=3, seq=2, start_step=3, packed=True)),
            f.message(f.scalars("r2", names=["loss"], points=2, seq=3, packed=True, writer_id="w2")),
            f.message(f.scalars("r2", names=["loss"], points=2, seq=4, start_step=2, writer_id="w2"))]
    worker, clock, _ = make(msgs)  # re-deliveries: tests/integration/test_ingest_mixed_versions.py
    pump(worker, clock)
    rows = worker.sink.rows("metric_scalars")
    keys = {(r["run_id"], r["name"], r["step"], r["writer_id"], r["seq"], r["idx"]) for r in rows}
    assert len(rows) == len(keys) == 16
    assert {(r, n, s) for r, n, s, *_ in keys} == (
        {("r1", n, s) for n in ("loss", "acc") for s in range(6)} | {("r2", "loss", s) for s in range(4)})
    assert worker.dead_letters.letters == []
