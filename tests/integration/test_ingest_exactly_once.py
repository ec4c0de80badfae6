"""Two `runstream ingest` workers on a 4-partition topic; one is SIGKILLed and restarted mid-stream (twice).

Every point must end up in ClickHouse exactly once (as every reader sees it:
deduplicated by message identity), and none may be missing.
"""

from __future__ import annotations

import threading
import time

from clickhouse_driver import Client

import schemas
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas import RunStarted, RunStatusChanged, ScalarBatch

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


def test_sigkill_and_restart_mid_stream_every_point_exactly_once(kafka_bootstrap, clickhouse_url, unique_name,
                                                                 tmp_path):
    topic = unique_name
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, topic, 4)
    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic,
            "--dlq-topic", topic + ".dlq", "--flush-interval", "0.05", "--flush-rows", "1000"]
    _stream(kafka_bootstrap, topic, range(0, 10))
    a = IngestProcess(args, tmp_path / "a.log").start()
    b = IngestProcess(args, tmp_path / "b.log").start()
    client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
    expected = RUNS * BATCHES * POINTS

    def count(final: bool = True) -> int:
        try:
            return client.execute(
                f"SELECT count() FROM `{unique_name}`.metric_scalars {'FINAL' if final else ''}")[0][0]
        except Exception:
            return 0  # the database is created by the first worker's migration

    try:
        wait_until(lambda: count() > 0, timeout_s=90, what="the first rows")
        producer = threading.Thread(target=_stream, args=(kafka_bootstrap, topic, range(10, BATCHES)))
        producer.start()
        for restart in range(2):
            # Mid-stream, flushing every 50 ms: rows of A's current batch may be written but not committed.
            time.sleep(0.4)
            a.kill()
            a = IngestProcess(args, tmp_path / f"a{restart + 2}.log").start()
        producer.join(timeout=120)
        wait_until(lambda: count() >= expected, timeout_s=180, what=f"{expected} points")
        assert a.stop() == 0, a.output()
        assert b.stop() == 0, b.output()
    finally:
        a.kill()
        b.kill()
    rows = client.execute(
        f"SELECT run_id, name, step, count() AS n FROM "
        f"(SELECT run_id, name, step FROM `{unique_name}`.metric_scalars "
        f" ORDER BY run_id, name, step LIMIT 1 BY run_id, name, step, writer_id, seq, idx) "
        f"GROUP BY run_id, name, step HAVING n != 1")
    assert rows == [], rows[:10]
    assert count() == expected
    per_run = dict(client.execute(
        f"SELECT run_id, uniqExact(name, step) FROM `{unique_name}`.metric_scalars GROUP BY run_id"))
    assert per_run == {f"run_{r}": BATCHES * POINTS for r in range(RUNS)}
    status = client.execute(
        f"SELECT count() FROM `{unique_name}`.run_status FINAL WHERE status = 'Completed'")[0][0]
    assert status == RUNS
    client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
    client.disconnect()
