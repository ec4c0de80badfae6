"""A topic holding both ScalarBatch versions (a sweep upgraded half way) ingests every point once, exactly.

Version 1 (Avro arrays) and version 2 (packed columns) batches of the same
runs, interleaved, one of them delivered twice; NaN and infinities included.
Read back as readers see it (deduplicated by identity), every point is there
once with its value bit for bit.
"""

from __future__ import annotations

import math
import struct
from array import array

from clickhouse_driver import Client

import schemas
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas import ScalarBatch
from schemas.packing import split_planes

RUNS, BATCHES, STEPS = 3, 8, 250  # 2 names x 250 steps a batch -> 12,000 points
SPECIALS = [math.nan, math.inf, -math.inf, -0.0]


def _value(run: int, step: int, name: int) -> float:
    if step % 97 == 0:
        return SPECIALS[(step // 97 + name) % len(SPECIALS)]
    return run * 1000 + step + name / 10


def _batch(run: int, b: int) -> bytes:
    idx = [i for _ in range(STEPS) for i in (0, 1)]
    steps = [b * STEPS + s for s in range(STEPS) for _ in (0, 1)]
    values = [_value(run, s, i) for i, s in zip(idx, steps)]
    env = dict(writer_id=f"w{run}", seq=b + 1, run_id=f"run_{run}", experiment="mixed", created_ms=1_000 + b)
    if (run + b) % 2:
        return schemas.encode(ScalarBatch(**env, names=["loss", "acc"], descriptions=["", ""], name_idx=idx,
                                          steps=steps, times_ms=[1_700_000_000_000 + s for s in steps], values=values))
    return schemas.encode(ScalarBatch(
        **env, names=["loss", "acc"], descriptions=["", ""], packed_name_idx=array("i", idx).tobytes(),
        packed_steps=split_planes(array("q", steps).tobytes(), 8),
        packed_times=split_planes(array("d", [1_700_000_000 + s / 1000 for s in steps]).tobytes(), 8),
        packed_values=array("d", values).tobytes()))


def test_both_versions_in_one_topic_ingest_exactly_once(kafka_bootstrap, clickhouse_url, unique_name, tmp_path):
    topic = unique_name
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, topic, 2)
    messages = [(f"run_{r}".encode(), _batch(r, b)) for b in range(BATCHES) for r in range(RUNS)]
    produce(kafka_bootstrap, topic, messages + messages[4:5])  # one batch delivered twice
    client = Client.from_url(clickhouse_url.rsplit("/", 1)[0] + "/default")
    expected = RUNS * BATCHES * STEPS * 2

    def points() -> int:
        try:
            return client.execute(f"SELECT count() FROM `{unique_name}`.metric_scalars FINAL")[0][0]
        except Exception:
            return 0

    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic,
            "--dlq-topic", topic + ".dlq", "--flush-interval", "0.2"]
    try:
        with IngestProcess(args, tmp_path / "worker.log") as worker:
            wait_until(lambda: points() >= expected, timeout_s=120, what=f"{expected} points")
            assert worker.stop() == 0, worker.output()
        rows = client.execute(
            f"SELECT run_id, name, step, time_ms, value FROM `{unique_name}`.metric_scalars "
            "FINAL ORDER BY run_id, name, step")
        assert len(rows) == expected
        bits = {(r, n, s): struct.pack("<d", v) for r, n, s, _, v in rows}
        for run in range(RUNS):
            for step in range(BATCHES * STEPS):
                for i, name in enumerate(("loss", "acc")):
                    want = struct.pack("<d", _value(run, step, i))
                    assert bits[(f"run_{run}", name, step)] == want, (run, name, step)
        assert {t - 1_700_000_000_000 for *_, t, _ in rows} == set(range(BATCHES * STEPS))
        assert client.execute(f"SELECT count() FROM `{unique_name}`.rejected_events")[0][0] == 0
    finally:
        client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        client.disconnect()
