"""``runstream exporter`` against the real broker and server, and against none.

The lag arithmetic and the collector are unit-tested with fakes
(tests/consumers/test_exporter.py); here the adapters meet kafka-python's admin
API and ClickHouse's system tables, and the process serves them over HTTP.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from clickhouse_driver import Client
from prometheus_client.parser import text_string_to_metric_families

from schemas.kafka_client import kafka
from consumers.exporter import read_kafka
from consumers.exporter_sources import ClickHouseSystemStats, KafkaAdminOffsets
from consumers.testing import create_topic, wait_until
from stack import free_ports

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """``(name, sorted labels) -> value`` from ``http://127.0.0.1:<port>/metrics``; empty when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class ExporterProcess:
    """``runstream exporter`` in a subprocess on a free 127.0.0.1 port; stopped with SIGTERM."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        [self.port] = free_ports(1)
        self.args = [sys.executable, "-m", "runstream", "exporter", "--host", "127.0.0.1",
                     "--port", str(self.port), *args]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExporterProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _produce_to(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, value=b"x%d" % i, partition=p) for p, n in counts.items() for i in range(n)]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runstream-tests")
    try:
        # The stack waits for the group coordinator at start; one retry covers a broker
        # started by hand whose __consumer_offsets topic is still being created.
        try:
            admin.describe_groups([group])
        except kafka.errors.CoordinatorNotAvailableError:
            time.sleep(3)
        result = admin.alter_group_offsets(
            group, {kafka.TopicPartition(t, p): kafka.structs.OffsetAndMetadata(o, "", -1)
                    for (t, p), o in offsets.items()})
        assert all(error is kafka.errors.NoError for error in result.values()), result
    finally:
        admin.close()


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runstream-tests")
    try:
        admin.delete_topics(topics)
    finally:
        admin.close()


@contextlib.contextmanager
def _topics(bootstrap: str, name: str) -> Iterator[tuple[str, str]]:
    topic, dlq = name, name + ".dlq"
    create_topic(bootstrap, topic, 2)
    create_topic(bootstrap, dlq, 1)
    try:
        yield topic, dlq
    finally:
        _delete_topics(bootstrap, [topic, dlq])


def test_lag_and_dlq_size_from_the_real_broker(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    with _topics(kafka_bootstrap, unique_name) as (topic, dlq):
        group = unique_name + "-group"
        _produce_to(kafka_bootstrap, topic, {0: 5, 1: 3})
        _produce_to(kafka_bootstrap, dlq, {0: 2})
        _commit(kafka_bootstrap, group, {(topic, 0): 2})  # partition 1: never committed

        reader = KafkaAdminOffsets(kafka_bootstrap, timeout_s=10)
        try:
            reading = read_kafka(reader, group=group, topic=topic, dlq_topic=dlq)
            assert reading.lag == {(topic, 0): 3, (topic, 1): 3}
            assert reading.dlq_size == 2
            assert reader.partitions(unique_name + "-missing") is None
        finally:
            reader.close()

        args = ["--kafka", kafka_bootstrap, "--group", group, "--topic", topic, "--dlq-topic", dlq,
                "--interval", "0.5"]
        with ExporterProcess(args, tmp_path / "exporter.log") as exporter:
            samples = wait_until(lambda: scrape(exporter.port).get(("runstream_kafka_up", ())) == 1
                                 and scrape(exporter.port), timeout_s=60, what="a Kafka poll")
            assert samples[("runstream_consumer_lag", (("partition", "0"), ("topic", topic)))] == 3
            assert samples[("runstream_consumer_lag", (("partition", "1"), ("topic", topic)))] == 3
            assert samples[("runstream_dlq_size", ())] == 2
            # The group catches up: the exporter follows on its next poll.
            _commit(kafka_bootstrap, group, {(topic, 0): 5, (topic, 1): 3})
            wait_until(lambda: scrape(exporter.port).get(
                ("runstream_consumer_lag", (("partition", "0"), ("topic", topic)))) == 0,
                timeout_s=60, what="lag 0 after the commit")
            assert exporter.stop() == 0, exporter.output()


def test_table_rows_parts_and_newest_point_from_real_system_tables(clickhouse_url: str, unique_name: str) -> None:
    server = clickhouse_url.rsplit("/", 1)[0]
    client = Client.from_url(server + "/default")
    url = f"{server}/{unique_name}"
    stats = ClickHouseSystemStats(url, timeout_s=10)
    try:
        # Database not created yet: no tables, not an error.
        assert stats.read().tables == {}
        client.execute(f"CREATE DATABASE `{unique_name}`")
        client.execute(
            f"CREATE TABLE `{unique_name}`.metric_scalars (experiment String, name String, run_id String,"
            " step Int64, time_ms Int64, value Float64) ENGINE = MergeTree ORDER BY (experiment, name, run_id, step)")
        client.execute(f"CREATE TABLE `{unique_name}`.runs (run_id String) ENGINE = MergeTree ORDER BY run_id")
        empty = stats.read()
        assert empty.tables == {"metric_scalars": (0, 0), "runs": (0, 0)}
        assert empty.newest_point_ms is None  # old servers answer max() = 0 on an empty table
        insert = f"INSERT INTO `{unique_name}`.metric_scalars (experiment, name, run_id, step, time_ms, value) VALUES"
        client.execute(insert, [("e", "loss", "r1", 1, 1_700_000_000_000, 0.5), ("e", "loss", "r1", 2, 1_700_000_001_000, 0.4)])
        client.execute(insert, [("e", "loss", "r2", 1, 1_700_000_000_500, 0.7)])
        reading = stats.read()
        assert reading.tables == {"metric_scalars": (3, 2), "runs": (0, 0)}
        assert reading.newest_point_ms == 1_700_000_001_000
    finally:
        stats.close()
        client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        client.disconnect()


def test_keeps_serving_with_up_0_when_kafka_and_clickhouse_are_unreachable(tmp_path: Path) -> None:
    kafka_port, clickhouse_port = free_ports(2)  # nothing listens there
    args = ["--kafka", f"127.0.0.1:{kafka_port}", "--clickhouse", f"clickhouse://127.0.0.1:{clickhouse_port}/runstream",
            "--interval", "0.5", "--timeout", "2"]
    with ExporterProcess(args, tmp_path / "exporter.log") as exporter:
        down = (("runstream_kafka_up", ()), ("runstream_clickhouse_up", ()))
        samples = wait_until(lambda: (s := scrape(exporter.port)) and all(s.get(k) == 0 for k in down) and s,
                             timeout_s=60, what="both sources reported down")
        assert samples[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))] >= 1
        assert samples[("runstream_exporter_scrape_errors_total", (("source", "clickhouse"),))] >= 1
        assert not any(name in {"runstream_consumer_lag", "runstream_table_rows"} for name, _ in samples)
        # Still answering on later polls, errors still counted.
        first = samples[("runstream_exporter_scrape_errors_total", (("source", "kafka"),))]
        wait_until(lambda: scrape(exporter.port).get(
            ("runstream_exporter_scrape_errors_total", (("source", "kafka"),)), 0) > first,
            timeout_s=60, what="another failed Kafka poll")
        assert exporter.stop() == 0, exporter.output()


def test_a_dead_broker_leaks_no_client_threads() -> None:
    # In a child process: kafka-python leaves each refused socket to the garbage
    # collector, and pytest's log capture keeps them alive past this test.
    [port] = free_ports(1)
    script = (
        "import logging, sys, threading\n"
        "logging.disable(logging.CRITICAL)\n"
        "from consumers.exporter_sources import KafkaAdminOffsets\n"
        "reader = KafkaAdminOffsets(sys.argv[1], timeout_s=0.3)\n"
        "before = threading.active_count()\n"
        "errors = []\n"
        "for _ in range(3):\n"
        "    try:\n"
        "        reader.partitions('anything')\n"
        "    except Exception as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(before, threading.active_count(), ','.join(errors))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, f"127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    before, after, errors = proc.stdout.split()
    assert errors == "SourceError,SourceError,SourceError"
    assert after == before
