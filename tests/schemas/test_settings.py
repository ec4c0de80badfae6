"""One settings module for every process: the same RUNSTREAM_* names and defaults, each process's own knobs."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from schemas.secrets import Secret
from schemas.settings import (
    DEFAULT_DLQ_TOPIC,
    DEFAULT_GROUP,
    DEFAULT_TOPIC,
    ENV,
    ENV_SECRETS,
    ExporterSettings,
    IngestSettings,
    Settings,
    WorkspaceSettings,
)

ENVIRONMENT = {"RUNSTREAM_KAFKA": "k1:9092,k2:9092", "RUNSTREAM_CLICKHOUSE": "clickhouse://ch:9000/db",
               "RUNSTREAM_HOME": "/data/rs", "RUNSTREAM_TOPIC": "events.x", "RUNSTREAM_SERVER": "http://mlflow:5000",
               "RUNSTREAM_KAFKA_SECURITY": "sasl_ssl",
               "RUNSTREAM_KAFKA_CA_FILE": "/etc/kafka/ca.pem", "RUNSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
               "RUNSTREAM_KAFKA_USER": "runstream-ingest", "RUNSTREAM_KAFKA_PASSWORD": "pw",
               "RUNSTREAM_CLICKHOUSE_PASSWORD": "chpw", "RUNSTREAM_CLICKHOUSE_WRITER": "clickhouse://w@ch:9000/db",
               "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD": "wpw"}


@pytest.mark.parametrize("cls", [Settings, WorkspaceSettings, IngestSettings, ExporterSettings])
def test_every_process_reads_the_same_variables(cls: type[Settings]) -> None:
    s = cls.resolve(env=ENVIRONMENT)
    assert (s.kafka, s.clickhouse, s.home, s.topic, s.server) == (
        "k1:9092,k2:9092", "clickhouse://ch:9000/db", Path("/data/rs"), "events.x", "http://mlflow:5000")
    assert (s.kafka_security, s.kafka_ca_file, s.kafka_sasl_mechanism, s.kafka_user) == (
        "SASL_SSL", Path("/etc/kafka/ca.pem"), "SCRAM-SHA-256", "runstream-ingest")
    assert s.kafka_password is not None and s.kafka_password.reveal() == "pw"
    assert s.clickhouse_password is not None and s.clickhouse_password.reveal() == "chpw"
    assert s.sink_clickhouse == ("clickhouse://w@ch:9000/db", Secret("wpw"))
    assert set(ENV.values()) | set(ENV_SECRETS.values()) == set(ENVIRONMENT)


def test_defaults_are_defined_once_and_shared() -> None:
    ingest, workspace = IngestSettings(), WorkspaceSettings()
    assert ingest.topic == workspace.topic == DEFAULT_TOPIC
    assert ingest.dlq_topic == DEFAULT_DLQ_TOPIC and ingest.group == DEFAULT_GROUP
    assert ingest.home == workspace.home == Path(".runstream").absolute()
    assert ingest.heartbeat_lost_s == workspace.heartbeat_lost_s == 300.0
    assert ingest.embedded_source and ingest.embedded_sink and workspace.embedded


def test_explicit_values_win_and_none_means_not_given() -> None:
    s = IngestSettings.resolve({"topic": "t", "kafka": None, "flush_rows": 5}, env=ENVIRONMENT)
    assert s.topic == "t" and s.kafka == "k1:9092,k2:9092" and s.flush_rows == 5


def test_each_process_refuses_the_others_knobs() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting"):
        IngestSettings.resolve({"linger_ms": 5}, env={})
    with pytest.raises(ConfigurationError, match="unknown setting"):
        WorkspaceSettings.resolve({"flush_rows": 5}, env={})


def test_shared_rules_hold_in_every_subclass() -> None:
    for cls in (WorkspaceSettings, IngestSettings):
        with pytest.raises(ConfigurationError, match="dead-letter topic"):
            cls(topic="a", dlq_topic="a")
        with pytest.raises(ConfigurationError, match="kafka must be host:port"):
            cls(kafka="no-port")
    with pytest.raises(ConfigurationError, match="acks"):
        WorkspaceSettings(kafka_options={"acks": 1})  # the SDK manages its producer's acks
    assert IngestSettings(kafka_options={"security_protocol": "SSL"}).kafka_options == {"security_protocol": "SSL"}


def test_settings_are_frozen_and_keyword_only() -> None:
    s = IngestSettings()
    with pytest.raises(FrozenInstanceError):
        s.topic = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        IngestSettings("k:1")  # type: ignore[misc]


def test_bad_values_are_configuration_errors_and_value_errors() -> None:
    for bad in ({"flush_rows": 0}, {"retry_initial_s": 2.0, "retry_max_s": 1.0}, {"metrics_port": 70000}):
        with pytest.raises(ConfigurationError):
            IngestSettings(**bad)  # type: ignore[arg-type]
    assert issubclass(ConfigurationError, ValueError)


def test_the_kafka_client_options_carry_the_bootstrap_list() -> None:
    s = Settings(kafka="a:1, b:2", kafka_options={"security_protocol": "SASL_SSL"})
    assert s.kafka_client_options() == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "SASL_SSL"}
    with pytest.raises(ConfigurationError, match="no Kafka"):
        Settings().kafka_client_options()


def test_the_rebalance_flush_budget_stays_below_the_session_timeout() -> None:
    # Issue 12, item 3: it was 20 s against a 10 s session timeout.
    from schemas.settings import IngestSettings

    defaults = IngestSettings()
    assert defaults.rebalance_flush_timeout_s * 1000 < defaults.session_timeout_ms
    with pytest.raises(ConfigurationError, match="below the session timeout"):
        IngestSettings(rebalance_flush_timeout_s=10.0, session_timeout_ms=10_000)
