"""Two `runstream ingest` workers on a 4-partition topic, SIGKILLed and restarted mid-stream.

Storage is at-least-once delivery into idempotent tables: the test first makes
sure duplicates really were written (both workers are killed while their
points are in ClickHouse and their batch is not committed: ``writer_progress``
is detached meanwhile, so they cannot finish the batch), and shows them (a
count without ``FINAL`` above the expected total, merges held). Then every
reader must see every point exactly once (deduplicated by message identity:
``FINAL``, ``LIMIT 1 BY``, ``runstream``'s own reader), and none may be missing.
"""

from __future__ import annotations

import threading
import time

from clickhouse_driver import Client

import schemas
from consumers.testing import create_topic, produce, wait_until
from producers.reading import open_reader
from runstream.testing import IngestProcess
from schemas import RunStarted, RunStatusChanged, ScalarBatch
from schemas.settings import WorkspaceSettings

RUNS, BATCHES, POINTS = 8, 30, 200  # 2 names x 100 steps per batch -> 48,000 points


def _events(run_index: int, batches: range) -> list[tuple[bytes, bytes]]:
    run_id, writer = f"run_{run_index}", f"writer_{run_index}"
    out = []

    def env(seq: int) -> dict:
        return dict(writer_id=writer, seq=seq, run_id=run_id, experiment="exactly-once", created_ms=1_000 + seq)

    if batches.start == 0:
        out.append((run_id.encode(), schemas.encode(RunStarted(**env(1)))))
    for b in batches:
        steps = [b * 100 + s for s in range(100) for _ in (0, 1)]
        out.append((run_id.encode(), schemas.encode(ScalarBatch(
            **env(2 + b), names=["loss", "acc"], descriptions=["", ""], name_idx=[0, 1] * 100, steps=steps,
            times_ms=steps, values=[float(s) for s in steps]))))
    if batches.stop == BATCHES:
        out.append((run_id.encode(), schemas.encode(RunStatusChanged(**env(2 + BATCHES), status="Completed"))))
    return out


def _stream(bootstrap: str, topic: str, batches: range) -> None:
    for r in range(RUNS):
        produce(bootstrap, topic, _events(r, batches))


def _wait_for_a_quiet_group(workers: list[IngestProcess]) -> None:
    """Until every worker owns partitions and no partition moved for 3 s."""
    def moves(worker: IngestProcess) -> list[str]:
        return [line for line in worker.output().splitlines()
                if "partitions assigned:" in line or "partitions revoked:" in line]

    def quiet() -> bool:
        seen = [moves(w) for w in workers]
        if not all(m and "assigned: [" in m[-1] and not m[-1].endswith("[]") for m in seen):
            return False
        time.sleep(3)
        return [moves(w) for w in workers] == seen

    wait_until(quiet, timeout_s=90, what="a settled group")


def test_sigkill_and_restart_mid_stream_duplicates_written_readers_see_every_point_once(
        kafka_bootstrap, clickhouse_url, unique_name, tmp_path):
    topic = unique_name
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, topic, 4)
    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic,
            "--dlq-topic", topic + ".dlq", "--flush-interval", "0.05", "--flush-rows", "1000"]
    _stream(kafka_bootstrap, topic, range(0, 10))
    a = IngestProcess(args, tmp_path / "a.log").start()
    b = IngestProcess(args, tmp_path / "b.log").start()
    client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
    db = f"`{unique_name}`"
    expected = RUNS * BATCHES * POINTS

    def count(final: bool = True) -> int:
        try:
            return client.execute(f"SELECT count() FROM {db}.metric_scalars {'FINAL' if final else ''}")[0][0]
        except Exception:
            return 0  # the database is created by the first worker's migration

    try:
        wait_until(lambda: count() > 0, timeout_s=90, what="the first rows")
        # Keep every written copy visible until the end: a merge would collapse duplicates at any moment.
        client.execute(f"SYSTEM STOP MERGES {db}.metric_scalars")
        # Workers write a batch's points, then writer_progress, then commit. Without writer_progress
        # they keep retrying it with their points already in: kill them there, and the next owners
        # must write those points again. First let the group settle and every run's counters load
        # (they are read from writer_progress too), so the workers have no reason to read it.
        _wait_for_a_quiet_group([a, b])
        _stream(kafka_bootstrap, topic, range(10, 11))
        wait_until(lambda: client.execute(
            f"SELECT count() FROM {db}.writer_progress FINAL WHERE seq >= 12")[0][0] == RUNS, timeout_s=60,
            what="batch 10 of every run")
        client.execute(f"DETACH TABLE {db}.writer_progress")
        before = count(final=False)
        producer = threading.Thread(target=_stream, args=(kafka_bootstrap, topic, range(11, 20)))
        producer.start()
        wait_until(lambda: count(final=False) > before + 10 * POINTS, timeout_s=60,
                   what="points written while writer_progress is away")
        a.kill()
        b.kill()
        client.execute(f"ATTACH TABLE {db}.writer_progress")
        producer.join(timeout=120)
        a = IngestProcess(args, tmp_path / "a2.log").start()
        b = IngestProcess(args, tmp_path / "b2.log").start()
        producer = threading.Thread(target=_stream, args=(kafka_bootstrap, topic, range(20, BATCHES)))
        producer.start()
        for restart in range(2):
            # Mid-stream, flushing every 50 ms: rows of A's current batch may be written but not committed.
            time.sleep(0.4)
            a.kill()
            a = IngestProcess(args, tmp_path / f"a{restart + 3}.log").start()
        producer.join(timeout=120)
        wait_until(lambda: count() >= expected, timeout_s=180, what=f"{expected} points")
        assert a.stop() == 0, a.output()
        assert b.stop() == 0, b.output()
    finally:
        a.kill()
        b.kill()
    # At-least-once delivery: copies of the same points really are in the table...
    assert count(final=False) > expected
    # ...and readers see exact values.
    rows = client.execute(
        f"SELECT run_id, name, step, count() AS n FROM "
        f"(SELECT run_id, name, step FROM {db}.metric_scalars "
        f" ORDER BY run_id, name, step LIMIT 1 BY run_id, name, step, writer_id, seq, idx) "
        f"GROUP BY run_id, name, step HAVING n != 1")
    assert rows == [], rows[:10]
    assert count() == expected
    per_run = dict(client.execute(
        f"SELECT run_id, uniqExact(name, step) FROM {db}.metric_scalars GROUP BY run_id"))
    assert per_run == {f"run_{r}": BATCHES * POINTS for r in range(RUNS)}
    status = client.execute(f"SELECT count() FROM {db}.run_status FINAL WHERE status = 'Completed'")[0][0]
    assert status == RUNS
    reader = open_reader(WorkspaceSettings(home=tmp_path / "reader", kafka=kafka_bootstrap, clickhouse=url))
    steps = [float(b * 100 + s) for b in range(BATCHES) for s in range(100)]
    for r in range(RUNS):
        assert reader.get_metrics(f"run_{r}") == {"loss": steps, "acc": steps}
    # Once merged, the copies are gone from the table itself.
    client.execute(f"SYSTEM START MERGES {db}.metric_scalars")
    client.execute(f"OPTIMIZE TABLE {db}.metric_scalars FINAL")
    assert count(final=False) == expected
    client.execute(f"DROP DATABASE IF EXISTS {db}")
    client.disconnect()
