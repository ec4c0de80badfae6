"""Secure mode of the local stack, against the real broker and server.

Kafka (``KAFKA_SECURE=1``): SASL_SSL with SCRAM-SHA-512 and ACLs. A wrong password
and an untrusted certificate each give one clear error at once; each principal can
do exactly its job. ClickHouse (``CLICKHOUSE_SECURE=1``): native TLS, no user
without a password, the reader reads only, the writer stays in its database.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError, ServerException
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import GroupAuthorizationFailedError, KafkaTimeoutError, TopicAuthorizationFailedError

from schemas.kafka_login import AuthenticationFailed, CertificateUntrusted, TlsHandshakeFailed, check_kafka_login
from stack import ClickHouseInstance, KafkaInstance

PRODUCER, INGEST, EXPORTER = "runstream-producer", "runstream-ingest", "runstream-exporter"


def _other_ca(tmp_path: Path) -> str:
    """A CA of its own, which signed nothing the servers present."""
    import subprocess

    ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
         "-keyout", str(tmp_path / "other-ca.key"), "-out", str(ca)],
        check=True, capture_output=True,
    )
    return str(ca)


# -- Kafka ---------------------------------------------------------------------------------------


@pytest.fixture
def topics(secure_kafka: KafkaInstance, unique_name: str) -> tuple[str, str, str]:
    """An events topic, its dead-letter topic and an ingest group, with the principals' ACLs."""
    events, dlq, group = unique_name, f"{unique_name}.dlq", f"{unique_name}-ingest"
    secure_kafka.grant(events_topic=events, dlq_topic=dlq, group=group)
    return events, dlq, group


def _producer(kafka: KafkaInstance, principal: str) -> KafkaProducer:
    return KafkaProducer(**kafka.client_options(principal), acks="all", enable_idempotence=True, max_block_ms=10000)


def _consume(kafka: KafkaInstance, principal: str, topic: str, group: str | None) -> list[bytes]:
    consumer = KafkaConsumer(**kafka.client_options(principal), group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        if group is None:
            consumer.assign([TopicPartition(topic, p) for p in range(8)])
        else:
            consumer.subscribe([topic])
        values = [message.value for message in consumer]
        if group is not None:
            consumer.commit()
        return values
    finally:
        consumer.close()


def test_wrong_password_is_one_clear_error_at_once(secure_kafka: KafkaInstance) -> None:
    options = {**secure_kafka.client_options(PRODUCER), "sasl_plain_password": "not-the-password"}
    with pytest.raises(AuthenticationFailed, match="invalid credentials") as caught:
        check_kafka_login(options.pop("bootstrap_servers"), options)
    # kafka-python alone would retry until its bootstrap timeout and end in KafkaTimeoutError
    assert not caught.value.retriable and "not-the-password" not in str(caught.value)


def test_untrusted_certificate_is_one_clear_error_at_once(secure_kafka: KafkaInstance, tmp_path: Path) -> None:
    options = {**secure_kafka.client_options(PRODUCER), "ssl_cafile": _other_ca(tmp_path)}
    with pytest.raises(CertificateUntrusted, match="does not trust") as caught:
        check_kafka_login(options.pop("bootstrap_servers"), options)
    assert not caught.value.retriable


def test_right_password_logs_in(secure_kafka: KafkaInstance) -> None:
    for principal in (PRODUCER, INGEST, EXPORTER):
        options = secure_kafka.client_options(principal)
        check_kafka_login(options.pop("bootstrap_servers"), options)


def test_no_plaintext_on_the_secure_listener(secure_kafka: KafkaInstance) -> None:
    """A client that forgot TLS gets nothing from the SASL_SSL port, and a TLS client
    pointed at the plaintext port fails clearly instead of falling back."""
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_servers=secure_kafka.sasl_bootstrap, bootstrap_timeout_ms=3000,
                         request_timeout_ms=3000).close()
    options = secure_kafka.client_options(PRODUCER)
    del options["bootstrap_servers"]
    with pytest.raises(TlsHandshakeFailed, match="TLS handshake"):
        check_kafka_login(secure_kafka.bootstrap, options)


def test_producer_writes_events_and_nothing_else(secure_kafka: KafkaInstance, topics: tuple[str, str, str]) -> None:
    events, dlq, group = topics
    producer = _producer(secure_kafka, PRODUCER)
    try:
        producer.send(events, b"point", key=b"run").get(timeout=10)
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(dlq, b"forged").get(timeout=10)
    finally:
        producer.close(timeout=5)
    with pytest.raises(TopicAuthorizationFailedError):
        _consume(secure_kafka, PRODUCER, events, None)
    with pytest.raises(GroupAuthorizationFailedError):
        _consume(secure_kafka, PRODUCER, events, group)


def test_ingest_reads_commits_and_dead_letters(secure_kafka: KafkaInstance, topics: tuple[str, str, str]) -> None:
    events, dlq, group = topics
    producer = _producer(secure_kafka, PRODUCER)
    try:
        producer.send(events, b"point", key=b"run").get(timeout=10)
    finally:
        producer.close(timeout=5)
    assert _consume(secure_kafka, INGEST, events, group) == [b"point"]
    dead_letters = _producer(secure_kafka, INGEST)
    try:
        dead_letters.send(dlq, b"bad").get(timeout=10)
        with pytest.raises(TopicAuthorizationFailedError):
            dead_letters.send(events, b"forged").get(timeout=10)
    finally:
        dead_letters.close(timeout=5)
    with pytest.raises(GroupAuthorizationFailedError):
        _consume(secure_kafka, INGEST, events, f"{group}-other")


def test_exporter_reads_offsets_never_messages(secure_kafka: KafkaInstance, topics: tuple[str, str, str]) -> None:
    events, _dlq, group = topics
    producer = _producer(secure_kafka, PRODUCER)
    try:
        producer.send(events, b"point", key=b"run").get(timeout=10)
    finally:
        producer.close(timeout=5)
    _consume(secure_kafka, INGEST, events, group)
    admin = KafkaAdminClient(**secure_kafka.client_options(EXPORTER))
    try:
        partitions = [TopicPartition(events, p["partition_index"])
                      for p in admin.describe_topics([events])[0]["partitions"]]
        latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
        committed = admin.list_group_offsets({group: partitions})
    finally:
        admin.close()
    assert sum(o.offset for o in latest.values()) == 1
    assert sum(o.offset for o in committed[group].values() if o.offset > 0) == 1
    with pytest.raises(TopicAuthorizationFailedError):
        _consume(secure_kafka, EXPORTER, events, None)
    with pytest.raises(GroupAuthorizationFailedError):
        _consume(secure_kafka, EXPORTER, events, group)


def test_plaintext_admin_listener_still_works(secure_kafka: KafkaInstance) -> None:
    admin = KafkaAdminClient(bootstrap_servers=secure_kafka.bootstrap, client_id="runstream-tests")
    try:
        assert admin.describe_cluster()["brokers"]
    finally:
        admin.close()


def test_secrets_are_private_files(secure_kafka: KafkaInstance) -> None:
    for principal in (PRODUCER, INGEST, EXPORTER):
        path = secure_kafka.password_file(principal)
        assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


# -- ClickHouse ----------------------------------------------------------------------------------


def _client(server: ClickHouseInstance, user: str, **overrides: Any) -> Client:
    settings: dict[str, Any] = dict(host="127.0.0.1", port=server.secure_port, user=user,
                                    password=server.password(user), database=server.database,
                                    secure=True, verify=True, ca_certs=str(server.ca_file),
                                    connect_timeout=5, send_receive_timeout=30)
    settings.update(overrides)
    return Client(**settings)


@pytest.fixture
def clients(secure_clickhouse: ClickHouseInstance, unique_name: str) -> Iterator[dict[str, Any]]:
    """admin, writer and reader over TLS; a table in the runstream database and one in another."""
    admin = _client(secure_clickhouse, "default")
    db = secure_clickhouse.database
    other = f"{unique_name}_other"
    table = f"{db}.{unique_name}"
    admin.execute(f"CREATE TABLE {table} (x UInt64) ENGINE = MergeTree ORDER BY x")
    admin.execute(f"CREATE DATABASE {other}")
    admin.execute(f"CREATE TABLE {other}.secret (x UInt64) ENGINE = MergeTree ORDER BY x")
    admin.execute(f"INSERT INTO {other}.secret VALUES", [(42,)])
    writer = _client(secure_clickhouse, "runstream_writer")
    reader = _client(secure_clickhouse, "runstream_reader")
    try:
        yield {"admin": admin, "writer": writer, "reader": reader, "table": table, "other": other}
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.execute(f"DROP DATABASE IF EXISTS {other}")
        for client in (admin, writer, reader):
            client.disconnect()


def _refused(client: Client, sql: str, *args: Any, code: int) -> None:
    with pytest.raises(ServerException) as caught:
        client.execute(sql, *args)
    assert caught.value.code == code, caught.value


READONLY, ACCESS_DENIED = 164, 291


def test_reader_reads_and_cannot_insert_alter_or_drop(clients: dict[str, Any]) -> None:
    reader, table = clients["reader"], clients["table"]
    clients["writer"].execute(f"INSERT INTO {table} VALUES", [(1,), (2,)])
    assert reader.execute(f"SELECT count() FROM {table}") == [(2,)]
    _refused(reader, f"INSERT INTO {table} VALUES", [(3,)], code=READONLY)
    _refused(reader, f"ALTER TABLE {table} DELETE WHERE 1", code=READONLY)
    _refused(reader, f"DROP TABLE {table}", code=READONLY)
    _refused(reader, f"CREATE TABLE {table}_x (x UInt8) ENGINE = Memory", code=READONLY)
    _refused(reader, f"SELECT * FROM {table} SETTINGS readonly = 0", code=READONLY)
    _refused(reader, "SELECT * FROM file('x', 'CSV', 'a String')", code=READONLY)
    _refused(reader, "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')", code=READONLY)
    _refused(reader, f"SELECT * FROM {clients['other']}.secret", code=ACCESS_DENIED)
    assert reader.execute(f"SELECT count() FROM {table}") == [(2,)]


def test_reader_cannot_lift_readonly_with_query_settings(clients: dict[str, Any]) -> None:
    with pytest.raises(ServerException) as caught:
        clients["reader"].execute(f"INSERT INTO {clients['table']} VALUES", [(3,)], settings={"readonly": 0})
    assert caught.value.code == READONLY


def test_writer_inserts_and_changes_tables_in_its_database_only(clients: dict[str, Any]) -> None:
    writer, table, other = clients["writer"], clients["table"], clients["other"]
    writer.execute(f"INSERT INTO {table} VALUES", [(1,)])
    writer.execute(f"ALTER TABLE {table} ADD COLUMN y UInt8 DEFAULT 0")
    writer.execute(f"CREATE TABLE {table}_new (x UInt8) ENGINE = Memory")
    writer.execute(f"DROP TABLE {table}_new")
    _refused(writer, f"SELECT * FROM {other}.secret", code=ACCESS_DENIED)
    _refused(writer, f"INSERT INTO {other}.secret VALUES", [(1,)], code=ACCESS_DENIED)
    _refused(writer, f"INSERT INTO {table} (x) SELECT x FROM {other}.secret", code=ACCESS_DENIED)
    _refused(writer, f"DROP TABLE {other}.secret", code=ACCESS_DENIED)
    _refused(writer, f"CREATE TABLE {other}.planted (x UInt8) ENGINE = Memory", code=ACCESS_DENIED)
    _refused(writer, f"RENAME TABLE {table} TO {other}.stolen", code=ACCESS_DENIED)
    _refused(writer, f"CREATE DATABASE {other}_2", code=ACCESS_DENIED)
    _refused(writer, f"SELECT * FROM merge('{other}', '.*')", code=ACCESS_DENIED)
    assert clients["admin"].execute(f"SELECT x FROM {other}.secret") == [(42,)]


def test_no_user_logs_in_without_its_password(secure_clickhouse: ClickHouseInstance) -> None:
    for user in ("default", "runstream_writer", "runstream_reader"):
        for password in ("", "wrong"):
            with pytest.raises(ServerException) as caught:
                _client(secure_clickhouse, user, password=password).execute("SELECT 1")
            assert caught.value.code in (193, 194), caught.value  # WRONG_PASSWORD, REQUIRED_PASSWORD


def test_untrusted_certificate_is_refused(secure_clickhouse: ClickHouseInstance, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        _client(secure_clickhouse, "runstream_reader", ca_certs=_other_ca(tmp_path)).execute("SELECT 1")


def test_tls_is_real(secure_clickhouse: ClickHouseInstance) -> None:
    """The secure port speaks TLS 1.2+ with the local CA's certificate for 127.0.0.1."""
    import socket

    context = ssl.create_default_context(cafile=str(secure_clickhouse.ca_file))
    with socket.create_connection(("127.0.0.1", secure_clickhouse.secure_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
