"""The emitter: batching, seq, memory bound, retries, heartbeats, threads and fork."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from producers import BufferFull, Experiment, RunNotActive, Workspace
from producers.emitter import MAX_MESSAGE_BYTES, Emitter
from producers.testing import InMemoryTransport
from producers.transport import SpoolTransport
from schemas import Heartbeat, RunStarted, ScalarBatch, decode
from schemas.spool import list_segments, read_segment


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def scalar_points(transport: InMemoryTransport) -> list[tuple[str, str, int, float]]:
    out = []
    for b in transport.events(ScalarBatch):
        name_idx, steps, _, values = b.point_columns()
        out.extend((b.run_id, b.names[i], s, v) for i, s, v in zip(name_idx, steps, values))
    return out


def test_seq_is_per_writer_from_one(ws: Workspace, transport: InMemoryTransport) -> None:
    exp = Experiment(ws, "e")
    a, b = exp.start_logging(), exp.start_logging()
    a.log("x", 1.0)
    b.log("x", 1.0)
    a.complete()
    b.complete()
    seqs = [e.seq for e in transport.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {e.writer_id for e in transport.events()} == {ws.emitter.writer_id}
    assert ws.emitter.last_seq(a.id) < ws.emitter.last_seq(b.id) == ws.emitter.seq


def test_linger_sends_without_flush(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, linger_ms=20)
    Experiment(ws, "e").start_logging().log("x", 1.0)
    assert wait_until(lambda: len(transport.events(ScalarBatch)) == 1)
    ws.close()


def test_a_full_batch_is_sent_before_the_linger(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, linger_ms=60_000,
                   batch_points=1000)
    run = Experiment(ws, "e").start_logging()
    for i in range(2500):
        run.log("x", float(i))
    assert wait_until(lambda: len(transport.events(ScalarBatch)) >= 2)
    # A full segment wakes the emitter long before the linger; what it takes then may include the
    # part-filled segment behind it, so only the first size is fixed, and none is over the cap.
    sizes = [len(b) for b in transport.events(ScalarBatch)]
    assert sizes[0] == 1000 and all(size <= 1000 for size in sizes), sizes
    ws.flush(5)
    assert [v for *_, v in scalar_points(transport)] == [float(i) for i in range(2500)]
    ws.close()


def test_long_strings_are_split_under_the_message_limit(ws: Workspace, transport: InMemoryTransport) -> None:
    run = Experiment(ws, "e").start_logging()
    for i in range(4000):
        run.log("text", "é" * 250 + str(i % 10)[:5])
    ws.flush()
    batches = transport.events(ScalarBatch)
    assert len(batches) > 1 and max(len(m.value) for m in transport.messages) <= MAX_MESSAGE_BYTES + 4096
    texts = [t for b in batches for t in b.text_values]
    assert len(texts) == 4000 and [s for b in batches for s in b.point_columns()[1]] == list(range(4000))


def test_scalar_batches_are_packed_columns(ws: Workspace, transport: InMemoryTransport) -> None:
    run = Experiment(ws, "e").start_logging()
    for i in range(10):
        run.log("a" if i % 2 else "b", float(i))
    run.log("c", float("nan"))
    ws.flush()
    # The linger (5 ms) may pass between two logs on a loaded machine, so the points can arrive in
    # more than one batch: every batch must be packed, and together they hold all 11 points in order.
    batches = transport.events(ScalarBatch)
    names: list[str] = []
    steps: list[int] = []
    times: list[int] = []
    values: list[float] = []
    for batch in batches:
        assert batch.packed and batch.name_idx == batch.steps == batch.times_ms == batch.values == []
        batch_idx, batch_steps, batch_times, batch_values = batch.point_columns()
        count = len(batch_idx)
        assert count and len(batch.packed_name_idx) == 4 * count and len(batch.packed_values) == 8 * count
        names.extend(batch.names[i] for i in batch_idx)
        steps.extend(batch_steps)
        times.extend(batch_times)
        values.extend(batch_values)
    assert names == ["b", "a"] * 5 + ["c"]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0] and values[:10] == [float(i) for i in range(10)]
    assert math.isnan(values[10])
    assert len(times) == 11 and times == sorted(times)


def test_a_batch_larger_than_a_message_is_split_in_order(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, batch_points=50_000)
    run = Experiment(ws, "e").start_logging()
    for i in range(60_000):
        run.log("x", float(i))
    ws.flush()
    batches = transport.events(ScalarBatch)
    assert len(batches) >= 3 and max(len(m.value) for m in transport.messages) <= MAX_MESSAGE_BYTES + 4096
    assert [v for b in batches for v in b.point_columns()[3]] == [float(i) for i in range(60_000)]
    ws.close()


def test_a_run_with_an_oversized_names_table_sends_only_the_names_a_batch_uses(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False)
    run = Experiment(ws, "e").start_logging()
    names = [f"{i:03d}" + "n" * 250 for i in range(300)]  # past the name limit (warned), 75,000 characters
    for name in names:
        run.log(name, 1.0)
    ws.flush()
    sent_before = len(transport.events(ScalarBatch))
    for name in (names[7], names[299], names[7]):
        run.log(name, 2.0)
    ws.flush()
    # The linger (50 ms) may pass between these logs on a loaded machine, so they can come in more than
    # one batch: each names exactly the names its points use (in the run's order), and in order they
    # hold the three points.
    later = transport.events(ScalarBatch)[sent_before:]
    logged: list[str] = []
    for batch in later:
        used = [batch.names[i] for i in batch.point_columns()[0]]
        assert used and batch.names == [name for name in names if name in used]
        logged.extend(used)
    assert logged == [names[7], names[299], names[7]]
    ws.close()


def test_rows_past_the_per_name_limit_are_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from schemas import RunLimits

    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False,
                   limits=RunLimits(max_rows_per_metric=5))
    run = Experiment(ws, "e").start_logging()
    for i in range(12):
        run.log("a" if i < 6 else "b", 1.0)
        if i % 4 == 3:
            ws.flush()
    ws.flush()
    warned = [r.getMessage() for r in caplog.records if "more than 5 rows" in r.getMessage()]
    assert len(warned) == 2 and "'a'" in warned[0] and "'b'" in warned[1]
    ws.close()


def test_transport_failures_are_retried_in_order(ws: Workspace, transport: InMemoryTransport) -> None:
    run = Experiment(ws, "e").start_logging()
    ws.flush()
    transport.fail_sends = 3
    for i in range(10):
        run.log("x", float(i))
        run.tag(f"t{i}")
    run.complete()  # waits for delivery
    events = transport.events(run_id=run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [v for *_, v in scalar_points(transport)] == [float(i) for i in range(10)]


def test_memory_bound_raises_buffer_full_and_logs_nothing_half_way(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, linger_ms=1,
                   batch_points=100, max_buffer_bytes=100 * 128, on_buffer_full="raise")
    run = Experiment(ws, "e").start_logging()
    ws.flush()
    transport.hold()  # the broker stalls: nothing drains
    logged = 0
    with pytest.raises(BufferFull):
        for i in range(100_000):
            run.log("x", float(i))
            logged += 1
    assert ws.emitter.buffered_bytes() >= 100 * 128 * 0.5
    with pytest.raises(BufferFull):
        run.tag("t")
    transport.release()
    run.complete()
    values = [v for *_, v in scalar_points(transport)]
    assert values == [float(i) for i in range(logged)]  # every accepted point, none of the refused ones
    ws.close()


def test_memory_bound_blocks_the_caller_until_there_is_room(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, linger_ms=1,
                   batch_points=100, max_buffer_bytes=100 * 128)
    run = Experiment(ws, "e").start_logging()
    ws.flush()
    transport.hold()
    done = threading.Event()

    def producer() -> None:
        for i in range(5000):
            run.log("x", float(i))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.5)  # blocked, not dropping
    transport.release()
    assert done.wait(30)
    thread.join()
    run.complete()
    assert [v for *_, v in scalar_points(transport)] == [float(i) for i in range(5000)]
    ws.close()


def test_heartbeats_while_a_run_is_open(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, heartbeat_interval_s=0.05)
    run = Experiment(ws, "e").start_logging()
    assert wait_until(lambda: len(transport.events(Heartbeat)) >= 2)
    beat = transport.events(Heartbeat)[0]
    assert beat.run_id == run.id and beat.interval_ms == 50
    run.complete()
    count = len(transport.events(Heartbeat))
    time.sleep(0.3)
    assert len(transport.events(Heartbeat)) == count  # no beats after the run ended
    ws.close()


def test_threads_log_every_point_exactly_once(ws: Workspace, transport: InMemoryTransport) -> None:
    exp = Experiment(ws, "e")
    shared = exp.start_logging()
    own = [exp.start_logging() for _ in range(4)]
    per_thread = 5000

    def work(k: int) -> None:
        for i in range(per_thread):
            shared.log(f"t{k}", float(i))
            own[k].log("x", float(i))
            if i % 1000 == 0:
                own[k].tag(f"tag{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ws.flush()
    got = scalar_points(transport)
    assert len(got) == 2 * 4 * per_thread
    counted = Counter((r, n, s) for r, n, s, _ in got)
    assert max(counted.values()) == 1
    for k in range(4):
        assert [v for r, n, _, v in got if r == shared.id and n == f"t{k}"] == [float(i) for i in range(per_thread)]
        assert [s for r, n, s, _ in got if r == own[k].id] == list(range(per_thread))
    seqs = [e.seq for e in transport.events()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_close_delivers_and_refuses_more(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, linger_ms=60_000)
    run = Experiment(ws, "e").start_logging()
    run.log("x", 1.0)
    ws.close(5)
    assert len(transport.events(ScalarBatch)) == 1 and transport.closed
    with pytest.raises(RunNotActive):
        run.log("y", 1.0)
    assert ws.flush(1)
    ws.close()  # idempotent


def test_a_flush_with_nothing_to_send_starts_nothing(tmp_path: Path) -> None:
    ws = Workspace(home=tmp_path, install_signal_handlers=False)
    assert ws.flush(1) and ws.emitter_if_started() is None
    assert ws.emitter.flush(1)
    assert not (tmp_path / "spool").exists()  # no transport was built


def test_emitter_takes_a_transport_instance_or_factory() -> None:
    made: list[str] = []

    def factory(writer_id: str) -> InMemoryTransport:
        made.append(writer_id)
        return InMemoryTransport()

    emitter = Emitter(factory, topic="t", install_signal_handlers=False)
    st = emitter.open_run("r", "e", heartbeat=False)
    st.add_point("x", 1.0, None, "", None)
    assert emitter.flush(5) and made == [emitter.writer_id]
    emitter.close(5)


def _spool_events(directory: Path) -> list:
    events = []
    for segment in list_segments(directory):
        events.extend(decode(r.value) for r in read_segment(segment))
    return events


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_its_own_writer_and_no_parent_points(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ws = Workspace(home=tmp_path, install_signal_handlers=False, linger_ms=60_000)  # embedded: a spool per writer
    run = Experiment(ws, "e").start_logging()
    for i in range(100):
        run.log("before_fork", float(i))  # buffered, not yet sent, when the process forks
    parent_writer = ws.emitter.writer_id
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            assert ws.emitter.writer_id != parent_writer
            for i in range(50):
                run.log("in_child", float(i))
            code = 0 if ws.flush(10) else 2
        finally:
            os._exit(code)
    for i in range(10):
        run.log("after_fork", float(i))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.complete()
    ws.close(5)
    events = _spool_events(spool)
    writers = {e.writer_id for e in events}
    assert len(writers) == 2 and parent_writer in writers
    child_writer = (writers - {parent_writer}).pop()
    by_writer: dict[str, list] = {parent_writer: [], child_writer: []}
    for e in events:
        if isinstance(e, ScalarBatch):
            by_writer[e.writer_id].extend(e.names[i] for i in e.point_columns()[0])
    assert Counter(by_writer[parent_writer]) == {"before_fork": 100, "after_fork": 10}
    assert Counter(by_writer[child_writer]) == {"in_child": 50}
    child_seqs = [e.seq for e in events if e.writer_id == child_writer]
    assert child_seqs == list(range(1, len(child_seqs) + 1))
    assert [e for e in events if isinstance(e, RunStarted)][0].writer_id == parent_writer


def test_spool_transport_is_the_embedded_default(tmp_path: Path) -> None:
    ws = Workspace(home=tmp_path / "home", install_signal_handlers=False)
    run = Experiment(ws, "e").start_logging()
    run.log("x", 1.0)
    run.complete()
    ws.close()
    events = _spool_events(tmp_path / "home" / "spool")
    assert [type(e).__name__ for e in events] == ["RunStarted", "ScalarBatch", "RunStatusChanged"]
    assert all(p.suffix == ".seg" for p in list_segments(tmp_path / "home" / "spool"))


def test_spool_transport_survives_a_failing_disk(tmp_path: Path) -> None:
    from producers.errors import TransportError

    blocker = tmp_path / "spool"
    blocker.write_text("a file where the spool folder should be")
    transport = SpoolTransport(blocker, "w1")
    with pytest.raises(TransportError):
        transport.send("t", b"k", b"v")
    blocker.unlink()
    transport.send("t", b"k", b"v")  # the disk is back: the same message goes through
    assert transport.flush(1)
    transport.close()
    assert [(r.key, r.value) for s in list_segments(blocker) for r in read_segment(s)] == [(b"k", b"v")]
