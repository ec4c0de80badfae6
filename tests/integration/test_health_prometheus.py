"""A real Prometheus watches a real worker and the exporter through a hostile workload.

Prometheus (Debian's package, 2.42 here) runs deploy/prometheus/prometheus.yml
with only the targets and intervals changed (1 s scrapes, 127.0.0.1 ports) and
the real alerts.yml loaded. The workload: a run logged with the SDK, with raw
garbage produced by kafka-python before and after it. The expected numbers are
read back from the topic itself (events per type, scalar points, undecodable
messages). Everything is asserted through PromQL on the HTTP API, the way an
operator would see it: lag builds while no worker runs, then the counters move
by exactly the workload and the lag returns to 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

import schemas
from consumers.metrics import REJECTION_REASONS
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas.kafka_client import kafka
from schemas import ScalarBatch
from stack import REPO_ROOT, free_ports
from test_health_exporter import ExporterProcess

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
SCALAR_POINTS = 200


def promql(port: int, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query; [] when Prometheus does not answer yet."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except OSError:
        return []
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(port: int, query: str) -> float | None:
    """The single value of an instant query, or None when it returns nothing."""
    result = promql(port, query)
    assert len(result) <= 1, f"{query}: {result}"
    return float(result[0]["value"][1]) if result else None


def prometheus_config(worker_port: int, exporter_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, pointed at 127.0.0.1 and scraping every second."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    targets = {"runstream-ingest": worker_port, "runstream-exporter": exporter_port}
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    return config


@contextmanager
def running_prometheus(config: dict[str, Any], tmp_path: Path) -> Iterator[int]:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is not on PATH: install Debian's `prometheus` package (make stack-deps)", pytrace=False)
    [port] = free_ports(1)
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [exe, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                assert proc.poll() is None, log_path.read_text(errors="replace")
                return False

        wait_until(ready, timeout_s=60, what="Prometheus ready")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def garbage() -> list[bytes]:
    """Raw bytes that do not decode as a runstream event."""
    good = schemas.encode(ScalarBatch(
        writer_id="w_garbage", seq=1, run_id="run_garbage", experiment="health", created_ms=1, names=["loss"],
        descriptions=[""], name_idx=[0], steps=[1], times_ms=[1], values=[1.0]))
    return [b"", os.urandom(300), good[: len(good) // 2], b"\xc3\x01" + b"\x00" * 8 + good[10:]]


def log_a_run(bootstrap: str, topic: str, home: Path) -> None:
    """What a training script does: one run, scalar points, complete."""
    from producers import Experiment, Workspace

    with Workspace(kafka=bootstrap, topic=topic, home=home, install_signal_handlers=False) as ws:
        run = Experiment(ws, "health").start_logging(display_name="health")
        for step in range(SCALAR_POINTS):
            run.log("loss", 1.0 / (step + 1))
            run.log("acc", step / SCALAR_POINTS)
        run.complete()
        assert ws.flush(60), "the SDK could not deliver its events"


def topic_contents(bootstrap: str, topic: str) -> tuple[int, Counter[str], int, int]:
    """``(messages, events per type, scalar points, undecodable messages)`` actually in ``topic``."""
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=10_000)
    try:
        partitions = [kafka.TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        total = sum(consumer.end_offsets(partitions).values())
        values = [record.value for _, record in zip(range(total), consumer)]
    finally:
        consumer.close()
    assert len(values) == total
    events: Counter[str] = Counter()
    points = undecodable = 0
    for value in values:
        try:
            event = schemas.decode(value)
        except schemas.DecodeError:
            undecodable += 1
            continue
        events[event.EVENT_TYPE] += 1
        if isinstance(event, ScalarBatch):
            points += len(event)
    return total, events, points, undecodable


@pytest.fixture
def own_database(clickhouse_url: str, unique_name: str) -> Iterator[str]:
    """The test's ClickHouse database (named like the test), dropped afterwards."""
    yield unique_name
    from clickhouse_driver import Client

    client = Client.from_url(clickhouse_url.rsplit("/", 1)[0] + "/default")
    try:
        client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
    finally:
        client.disconnect()


def test_prometheus_sees_the_counters_move_and_the_lag_return_to_zero(
    kafka_bootstrap: str, clickhouse_url: str, unique_name: str, own_database: str, tmp_path: Path
) -> None:
    topic, dlq, group = unique_name, unique_name + ".dlq", unique_name
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + own_database
    create_topic(kafka_bootstrap, topic, 2)
    create_topic(kafka_bootstrap, dlq, 1)
    [worker_port] = free_ports(1)
    exporter_args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--group", group, "--topic", topic,
                     "--dlq-topic", dlq, "--interval", "1"]
    worker_args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", group,
                   "--dlq-topic", dlq, "--flush-interval", "0.2", "--metrics-port", str(worker_port)]
    bad = garbage()
    lag = f'sum(runstream_consumer_lag{{topic="{topic}"}})'

    with ExporterProcess(exporter_args, tmp_path / "exporter.log") as exporter:
        config = prometheus_config(worker_port, exporter.port)
        with running_prometheus(config, tmp_path) as prom:
            # The real alert rules loaded.
            rules = promql_rules(prom)
            assert {"RunstreamIngestStalled", "RunstreamNoWorkers", "RunstreamConsumerLagHigh"} <= rules

            # No worker yet: the exporter alone shows the backlog building.
            produce(kafka_bootstrap, topic, [(b"run_garbage", value) for value in bad[:2]])
            log_a_run(kafka_bootstrap, topic, tmp_path / "home")
            produce(kafka_bootstrap, topic, [(None, value) for value in bad[2:]])
            total, events, points, undecodable = topic_contents(kafka_bootstrap, topic)
            assert undecodable == len(bad)
            assert events["scalars"] >= 1 and points == 2 * SCALAR_POINTS, (events, points)
            wait_until(lambda: scalar(prom, lag) == total, timeout_s=90, what=f"lag {total} through PromQL")
            assert scalar(prom, 'up{job="runstream-exporter"}') == 1
            assert scalar(prom, "runstream_kafka_up") == 1
            assert scalar(prom, f'count(runstream_consumer_lag{{topic="{topic}"}})') == 2  # both partitions

            final = {
                lag: 0.0,
                'sum(runstream_points_written_total{table="metric_scalars"})': float(points),
                "sum(runstream_events_consumed_total)": float(sum(events.values())),
                "sum(runstream_dlq_messages_total)": float(len(bad)),
                "runstream_dlq_size": float(len(bad)),
            }
            with IngestProcess(worker_args, tmp_path / "worker.log") as worker:
                wait_for_values(prom, final, worker, timeout_s=180)

                assert scalar(prom, 'up{job="runstream-ingest"}') == 1
                consumed = promql(prom, "sum by (event_type) (runstream_events_consumed_total)")
                by_type = {r["metric"]["event_type"]: float(r["value"][1]) for r in consumed}
                assert {t: n for t, n in by_type.items() if n} == events
                # Every event type and reason has a series from the start (0 until it happens).
                assert set(by_type) == {e.EVENT_TYPE for e in schemas.EVENT_TYPES}
                rejected = promql(prom, "sum by (reason) (runstream_events_rejected_total)")
                by_reason = {r["metric"]["reason"]: float(r["value"][1]) for r in rejected}
                assert sum(by_reason.values()) == len(bad), by_reason
                assert {r for r, n in by_reason.items() if n} <= schemas.DecodeError.REASONS, by_reason
                assert set(by_reason) == REJECTION_REASONS
                assert scalar(prom, "sum(runstream_clickhouse_insert_errors_total)") == 0
                assert (scalar(prom, "sum(runstream_clickhouse_insert_seconds_count)") or 0) >= 1
                assert (scalar(prom, "sum(runstream_end_to_end_latency_seconds_count)") or 0) >= 1
                # The exporter's view of ClickHouse: the rows are there (before merges: at least).
                wait_until(lambda: (scalar(prom, 'runstream_table_rows{table="metric_scalars"}') or 0) >= points,
                           timeout_s=60, what="table rows via the exporter")
                assert scalar(prom, "runstream_clickhouse_up") == 1
                assert scalar(prom, "runstream_newest_point_age_seconds") is not None
                # The backlog was seen, then drained.
                assert scalar(prom, f"max_over_time({lag}[10m:1s])") == total
                assert worker.stop() == 0, worker.output()
        assert exporter.stop() == 0, exporter.output()


def wait_for_values(port: int, expected: dict[str, float], worker: IngestProcess, timeout_s: float) -> None:
    """Until every query in ``expected`` answers its value; fails early if the worker dies."""
    deadline = time.monotonic() + timeout_s
    values: dict[str, float | None] = {}
    while time.monotonic() < deadline:
        values = {query: scalar(port, query) for query in expected}
        if values == expected:
            return
        if worker.proc.poll() is not None:
            pytest.fail(f"the worker exited ({worker.proc.returncode}); values {values}\n{worker.output()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f}s: expected {expected}, got {values}\n{worker.output()[-3000:]}")


def promql_rules(port: int) -> set[str]:
    """Names of the alerting rules Prometheus loaded."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as response:
        body = json.load(response)
    return {rule["name"] for group in body["data"]["groups"] for rule in group["rules"] if rule["type"] == "alerting"}
