"""ClickHouse stopped and started while a worker ingests: nothing lost, nothing doubled, worker alive."""

from __future__ import annotations

import time

from clickhouse_driver import Client

import schemas
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas import ScalarBatch


def _batch(run_id: str, seq: int) -> tuple[bytes, bytes]:
    steps = list(range(seq * 50, seq * 50 + 50))
    return run_id.encode(), schemas.encode(ScalarBatch(
        writer_id="w_outage", seq=seq, run_id=run_id, experiment="outage", created_ms=seq, names=["loss"],
        descriptions=[""], name_idx=[0] * 50, steps=steps, times_ms=steps, values=[1.0] * 50))


def test_clickhouse_down_and_back_no_loss(kafka_bootstrap, private_clickhouse, unique_name, tmp_path):
    topic = unique_name
    url = f"clickhouse://127.0.0.1:{private_clickhouse.port}/{unique_name}"
    create_topic(kafka_bootstrap, topic, 2)
    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic,
            "--dlq-topic", topic + ".dlq", "--flush-interval", "0.2"]
    client_url = f"clickhouse://127.0.0.1:{private_clickhouse.port}/default"

    def count() -> int:
        client = Client.from_url(client_url)
        try:
            return client.execute(f"SELECT count() FROM `{unique_name}`.metric_scalars FINAL")[0][0]
        except Exception:
            return -1
        finally:
            client.disconnect()

    produce(kafka_bootstrap, topic, [_batch(f"r{i % 3}", i) for i in range(1, 21)])
    worker = IngestProcess(args, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: count() == 20 * 50, timeout_s=90, what="the first 1000 points")
        private_clickhouse.stop()
        produce(kafka_bootstrap, topic, [_batch(f"r{i % 3}", i) for i in range(21, 61)])
        time.sleep(3)  # the worker fails, backs off, pauses its partitions
        assert worker.proc.poll() is None, worker.output()
        private_clickhouse.start()
        wait_until(lambda: count() == 60 * 50, timeout_s=120, what="all 3000 points after the outage")
        assert worker.proc.poll() is None
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
        private_clickhouse.start()
    assert "retrying" in worker.output()
    client = Client.from_url(client_url)
    dupes = client.execute(
        f"SELECT run_id, step, count() AS n FROM (SELECT run_id, step FROM `{unique_name}`.metric_scalars "
        f"LIMIT 1 BY writer_id, seq, idx) GROUP BY run_id, step HAVING n != 1")
    assert dupes == []
    client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
    client.disconnect()
