"""Faults on the local cluster, mid-stream, with exact counts.

Each test runs several producer processes (the SDK: acks=all, idempotent) and
two or three ``runstream ingest`` workers against the 3-broker Kafka and the
2 x 2 ClickHouse, injects one fault while the producers are logging, and then
checks that every point is there exactly once: through the Distributed table,
through ``Run.get_metrics()``, and on both replicas of each shard.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from .harness import Cluster, Pipeline, rejected

pytestmark = pytest.mark.timeout(900)

PRODUCERS = 3
LOGGING_S = 20.0
"""How long the producers spread their logging over: faults land in the middle."""


@pytest.fixture
def pipeline(cluster: Cluster, tmp_path, request) -> Pipeline:
    name = f"rs_{request.node.name.removeprefix('test_')[:30]}_{uuid.uuid4().hex[:6]}"
    p = Pipeline(cluster, name, tmp_path)
    yield p
    p.close()
    cluster.start_all()
    p.drop()


def test_broker_sigkill_mid_stream_loses_and_doubles_nothing(cluster: Cluster, pipeline: Pipeline):
    pipeline.start_worker()
    pipeline.start_worker()
    pipeline.start_producers(PRODUCERS, duration_s=LOGGING_S)
    pipeline.first_rows()
    time.sleep(3)
    cluster.kill("kafka-2")
    time.sleep(10)
    cluster.start("kafka-2")
    pipeline.wait_producers()
    pipeline.wait_points(pipeline.expected_points)
    time.sleep(2)  # anything doubled would arrive after the last expected point
    pipeline.assert_exact()
    assert rejected(pipeline) == 0


def test_clickhouse_replica_sigkill_inserts_go_on_through_the_other_replica(cluster: Cluster, pipeline: Pipeline):
    # The workers' URL names clickhouse-s1r1 first: killing it also moves their connections to an alternate.
    pipeline.start_worker()
    pipeline.start_worker()
    pipeline.start_producers(PRODUCERS, duration_s=LOGGING_S)
    pipeline.first_rows()
    time.sleep(3)
    cluster.kill("clickhouse-s1r1")
    before = pipeline.points()
    # Inserts go on while the replica is down: shard 1 through clickhouse-s1r2.
    pipeline.wait_points(before + 1000, timeout_s=120)
    time.sleep(5)
    cluster.start("clickhouse-s1r1")
    pipeline.wait_producers()
    pipeline.wait_points(pipeline.expected_points)
    pipeline.assert_exact()  # SYSTEM SYNC REPLICA, then both replicas of each shard hold the same rows
    assert rejected(pipeline) == 0


def test_zookeeper_down_20s_inserts_wait_and_nothing_is_lost(cluster: Cluster, pipeline: Pipeline):
    pipeline.start_worker()
    pipeline.start_worker()
    pipeline.start_producers(PRODUCERS, duration_s=LOGGING_S)
    pipeline.first_rows()
    cluster.kill("zookeeper")
    time.sleep(20)
    cluster.start("zookeeper")
    pipeline.wait_producers()
    pipeline.wait_points(pipeline.expected_points)
    pipeline.assert_exact()
    logs = pipeline.worker_logs()
    # Replicated tables turned read-only: the workers backed off with their partitions paused.
    assert "with the source paused" in logs and "resuming" in logs, logs[-3000:]
    assert rejected(pipeline) == 0 and "dead-lettering" not in logs


def test_ingest_worker_sigkill_partitions_move_and_limits_stay_identical(cluster: Cluster, pipeline: Pipeline):
    # Five names per run, three allowed: whichever worker holds a run, m0..m2 are kept and m3, m4 refused.
    pipeline.names = 5
    limit = ("--limit", "max_metric_names=3")
    for _ in range(3):
        pipeline.start_worker(*limit)
    pipeline.start_producers(PRODUCERS, duration_s=LOGGING_S)
    pipeline.first_rows()
    time.sleep(3)
    victim = pipeline.workers[0]
    victim.kill()
    pipeline.wait_producers()
    kept = ["m0", "m1", "m2"]
    expected = len(pipeline.producers) * pipeline.runs * len(kept) * pipeline.steps
    pipeline.wait_points(expected, names=kept)
    time.sleep(2)
    assert pipeline.points(names=["m3", "m4"]) == 0
    pipeline.assert_exact(kept_names=kept)
    # The victim's partitions moved: the survivors' latest assignments cover the whole topic.
    latest = [re.findall(r"partitions assigned: \[([0-9, ]*)\]", w.output())[-1] for w in pipeline.workers[1:]]
    covered = {int(p) for text in latest for p in text.split(",") if p.strip()}
    assert covered == set(range(pipeline.partitions)), latest
    assert rejected(pipeline, "too_many_metric_names") > 0
