"""The local stack is real: a Kafka broker that stores and serves messages, a
ClickHouse server that stores and returns rows, and scripts that start and stop
private instances of both without touching the shared ones."""

from __future__ import annotations

import socket
import time

import pytest
from clickhouse_driver import Client
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaTimeoutError

from stack import ClickHouseInstance, KafkaInstance


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runstream-tests")


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = _admin(bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = _admin(bootstrap)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[tuple[int, bytes, bytes]]:
    """Read ``expected`` records from every partition's start; (partition, key, value) in log order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        got: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend((r.partition, r.key, r.value) for r in batch)
        return got
    finally:
        consumer.close()


def _port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the shared stack -------------------------------------------------------


def test_kafka_admin_sees_one_broker(kafka_bootstrap: str) -> None:
    admin = _admin(kafka_bootstrap)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert len(cluster["brokers"]) == 1
    broker = cluster["brokers"][0]
    assert f"{broker['host']}:{broker['port']}" == kafka_bootstrap


def test_kafka_produces_and_consumes_real_messages(kafka_bootstrap: str, unique_name: str) -> None:
    _create_topic(kafka_bootstrap, unique_name, partitions=3)
    try:
        records = [(f"run-{i % 4}".encode(), f"step={i}".encode()) for i in range(40)]
        _produce(kafka_bootstrap, unique_name, records)

        got = _consume_all(kafka_bootstrap, unique_name, expected=len(records))

        assert sorted((k, v) for _, k, v in got) == sorted(records)
        # One key, one partition, in send order: what per-run ordering relies on.
        for key in {k for k, _ in records}:
            assert len({p for p, k, _ in got if k == key}) == 1
            assert [v for _, k, v in got if k == key] == [v for k, v in records if k == key]
    finally:
        _delete_topic(kafka_bootstrap, unique_name)


def test_kafka_does_not_create_topics_on_first_use(kafka_bootstrap: str, unique_name: str) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(unique_name, b"lost").get(timeout=5)
    finally:
        producer.close()
    admin = _admin(kafka_bootstrap)
    try:
        assert unique_name not in admin.list_topics()
    finally:
        admin.close()


def test_clickhouse_answers_version(clickhouse_url: str) -> None:
    client = Client.from_url(clickhouse_url)
    try:
        [(version,)] = client.execute("SELECT version()")
    finally:
        client.disconnect()
    assert version.split(".")[0].isdigit()


def test_clickhouse_creates_inserts_selects_and_drops(clickhouse_url: str, unique_name: str) -> None:
    client = Client.from_url(clickhouse_url)
    try:
        client.execute(f"CREATE DATABASE {unique_name}")
        try:
            client.execute(
                f"CREATE TABLE {unique_name}.points (run_id String, step UInt64, value Float64)"
                " ENGINE = MergeTree() ORDER BY (run_id, step)"
            )
            rows = [(f"run-{i % 3}", i, i / 2) for i in range(300)]
            client.execute(f"INSERT INTO {unique_name}.points (run_id, step, value) VALUES", rows)

            got = client.execute(f"SELECT run_id, step, value FROM {unique_name}.points ORDER BY step")
            by_run = client.execute(
                f"SELECT run_id, count(), max(step) FROM {unique_name}.points GROUP BY run_id ORDER BY run_id"
            )
        finally:
            client.execute(f"DROP DATABASE {unique_name}")
        databases = {name for (name,) in client.execute("SHOW DATABASES")}
    finally:
        client.disconnect()

    assert got == rows
    assert by_run == [("run-0", 100, 297), ("run-1", 100, 298), ("run-2", 100, 299)]
    assert unique_name not in databases


# --- private instances: the scripts start and stop them ---------------------


def test_private_kafka_stops_and_restarts_with_its_data(
    private_kafka: KafkaInstance, kafka_bootstrap: str, unique_name: str
) -> None:
    assert private_kafka.bootstrap != kafka_bootstrap
    _create_topic(private_kafka.bootstrap, unique_name, partitions=1)
    records = [(b"run", f"step={i}".encode()) for i in range(5)]
    _produce(private_kafka.bootstrap, unique_name, records)

    private_kafka.stop()
    try:
        assert not private_kafka.is_running()
        assert not _port_accepts(private_kafka.port)
        # The shared broker did not notice.
        admin = _admin(kafka_bootstrap)
        try:
            assert len(admin.describe_cluster()["brokers"]) == 1
        finally:
            admin.close()
    finally:
        private_kafka.start()

    assert private_kafka.is_running()
    got = _consume_all(private_kafka.bootstrap, unique_name, expected=len(records))
    assert [(k, v) for _, k, v in got] == records


def test_private_clickhouse_stops_and_restarts_with_its_data(
    private_clickhouse: ClickHouseInstance, clickhouse_url: str, unique_name: str
) -> None:
    assert private_clickhouse.url != clickhouse_url
    client = Client.from_url(private_clickhouse.url)
    try:
        client.execute(f"CREATE TABLE {unique_name} (step UInt64) ENGINE = MergeTree() ORDER BY step")
        client.execute(f"INSERT INTO {unique_name} (step) VALUES", [(i,) for i in range(10)])
    finally:
        client.disconnect()

    private_clickhouse.stop()
    try:
        assert not private_clickhouse.is_running()
        assert not _port_accepts(private_clickhouse.port)
        shared = Client.from_url(clickhouse_url)
        try:
            assert shared.execute("SELECT 1") == [(1,)]
        finally:
            shared.disconnect()
    finally:
        private_clickhouse.start()

    client = Client.from_url(private_clickhouse.url)
    try:
        assert client.execute(f"SELECT sum(step) FROM {unique_name}") == [(45,)]
    finally:
        client.disconnect()


def test_start_is_a_no_op_on_a_running_instance(
    private_kafka: KafkaInstance, private_clickhouse: ClickHouseInstance
) -> None:
    assert private_kafka.state_dir is not None and private_clickhouse.state_dir is not None
    pid_files = [private_kafka.state_dir / "kafka.pid", private_clickhouse.state_dir / "clickhouse.pid"]
    before = [f.read_text() for f in pid_files]

    private_kafka.start()
    private_clickhouse.start()

    assert [f.read_text() for f in pid_files] == before
    assert private_kafka.is_running()
    assert private_clickhouse.is_running()
