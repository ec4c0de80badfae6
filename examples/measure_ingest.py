"""Measure ingest throughput: points per second for a 1M-point workload.

    .venv/bin/python examples/measure_ingest.py embedded      # spool -> chDB, in a temp home
    .venv/bin/python examples/measure_ingest.py stack         # Kafka -> ClickHouse (RUNSTREAM_KAFKA/CLICKHOUSE)

The events are encoded up front (10 runs x 5 metrics x 20,000 steps, 10,000
points per ScalarBatch, like the SDK's batches), written to the spool or a
fresh 4-partition topic, then one in-process worker ingests them; the clock
covers ingest only (decode, checks, rows, inserts, commits). A quick
measurement, not a benchmark suite.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import schemas  # noqa: E402
from schemas.settings import IngestSettings  # noqa: E402
from consumers.service import IngestService  # noqa: E402
from schemas import RunStarted, RunStatusChanged, ScalarBatch  # noqa: E402

RUNS, NAMES, STEPS, BATCH = 10, 5, 20_000, 10_000


def workload(experiment: str) -> list[tuple[bytes, bytes]]:
    out = []
    t0 = int(time.time() * 1000)
    names = [f"metric_{i}" for i in range(NAMES)]
    for r in range(RUNS):
        run_id, writer = f"bench_{r}_{uuid.uuid4().hex[:8]}", f"w{r}_{uuid.uuid4().hex[:8]}"
        seq = 1
        env = lambda: dict(writer_id=writer, seq=seq, run_id=run_id, experiment=experiment, created_ms=t0)  # noqa: E731
        out.append((run_id.encode(), schemas.encode(RunStarted(**env()))))
        points = [(i, s) for s in range(STEPS) for i in range(NAMES)]
        for start in range(0, len(points), BATCH):
            seq += 1
            chunk = points[start:start + BATCH]
            out.append((run_id.encode(), schemas.encode(ScalarBatch(
                **env(), names=names, descriptions=[""] * NAMES, name_idx=[i for i, _ in chunk],
                steps=[s for _, s in chunk], times_ms=[t0 + s for _, s in chunk],
                values=[math.sin(s / 100) + i for i, s in chunk]))))
        seq += 1
        out.append((run_id.encode(), schemas.encode(RunStatusChanged(**env(), status="Completed"))))
    return out


def embedded() -> tuple[int, float]:
    from schemas.spool import SpoolWriter

    home = Path(tempfile.mkdtemp(prefix="runstream-measure-"))
    messages = workload("measure")
    w = SpoolWriter(home / "spool", "bench")
    for key, value in messages:
        w.append(key, value)
    w.close()
    service = IngestService(IngestSettings(home=home, metrics_port=None), progress=lambda m: None)
    service.start()
    started = time.perf_counter()
    service.run(until_idle_s=0.2)
    elapsed = time.perf_counter() - started
    service.close()
    return RUNS * NAMES * STEPS, elapsed


def stack() -> tuple[int, float]:
    from consumers._kafka import kafka

    bootstrap = os.environ.get("RUNSTREAM_KAFKA", "127.0.0.1:9092")
    base = os.environ.get("RUNSTREAM_CLICKHOUSE", "clickhouse://127.0.0.1:9000/runstream")
    name = f"rs_measure_{uuid.uuid4().hex[:10]}"
    url = base.rsplit("/", 1)[0] + "/" + name
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([kafka.admin.NewTopic(name, num_partitions=4, replication_factor=1)])
    admin.close()
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                   max_request_size=2 * 1024 * 1024)
    for key, value in workload("measure"):
        producer.send(name, key=key, value=value)
    producer.flush()
    producer.close()
    home = Path(tempfile.mkdtemp(prefix="runstream-measure-"))
    config = IngestSettings(kafka=bootstrap, clickhouse=url, home=home, topic=name, group=name,
                          dlq_topic=name + ".dlq", metrics_port=None, topic_partitions=4)
    service = IngestService(config, progress=lambda m: None)
    service.start()
    started = time.perf_counter()
    service.run(until_idle_s=3.0)
    elapsed = time.perf_counter() - started - 3.0  # the idle wait is not ingest time
    service.close()
    from clickhouse_driver import Client

    client = Client.from_url(url)
    n = client.execute(f"SELECT count() FROM `{name}`.metric_scalars FINAL")[0][0]
    client.execute(f"DROP DATABASE `{name}`")
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.delete_topics([name, name + ".dlq"])
    admin.close()
    assert n == RUNS * NAMES * STEPS, n
    return n, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("where", choices=["embedded", "stack"])
    args = parser.parse_args()
    points, elapsed = embedded() if args.where == "embedded" else stack()
    print(f"{args.where}: {points:,} points in {elapsed:.1f}s = {points / elapsed:,.0f} points/s")


if __name__ == "__main__":
    main()
