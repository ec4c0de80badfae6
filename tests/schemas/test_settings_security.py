"""TLS/SASL settings and passwords: where they come from, what is refused, and that they never print."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from schemas.secrets import ReadableSecretWarning, Secret
from schemas.settings import IngestSettings, Settings, WorkspaceSettings

SASL = {"RUNSTREAM_KAFKA": "b:9094", "RUNSTREAM_KAFKA_SECURITY": "SASL_SSL", "RUNSTREAM_KAFKA_CA_FILE": "/ca.pem",
        "RUNSTREAM_KAFKA_USER": "runstream-producer", "RUNSTREAM_KAFKA_PASSWORD": "kafka-secret"}


def test_sasl_ssl_options_for_kafka_python() -> None:
    options = WorkspaceSettings.resolve(env=SASL).kafka_client_options()
    assert options == {"bootstrap_servers": ["b:9094"], "security_protocol": "SASL_SSL", "ssl_cafile": "/ca.pem",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "runstream-producer",
                       "sasl_plain_password": "kafka-secret"}


def test_plaintext_options_are_unchanged() -> None:
    assert Settings.resolve(env={"RUNSTREAM_KAFKA": "b:9092"}).kafka_client_options() == {
        "bootstrap_servers": ["b:9092"]}


def test_passwords_never_print(tmp_path: Path) -> None:
    s = IngestSettings.resolve(env={**SASL, "RUNSTREAM_CLICKHOUSE": "clickhouses://w:ch-secret@h:9440/db"},
                               explicit={"kafka_options": {"ssl_password": "key-secret"}, "home": tmp_path})
    text = repr(s) + str(s)
    assert "kafka-secret" not in text and "ch-secret" not in text and "key-secret" not in text
    assert s.clickhouse == "clickhouses://w@h:9440/db"  # the URL itself can be logged now
    assert s.clickhouse_password == Secret("ch-secret")
    assert {v.reveal() for v in s.secret_values()} == {"kafka-secret", "ch-secret", "key-secret"}


def test_password_from_a_file_and_never_both(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    path.chmod(0o600)
    env = {**SASL, "RUNSTREAM_KAFKA_PASSWORD": "", "RUNSTREAM_KAFKA_PASSWORD_FILE": str(path)}
    assert Settings.resolve(env=env).kafka_password == Secret("from-file")
    with pytest.raises(ConfigurationError, match="not both"):
        Settings.resolve(env={**SASL, "RUNSTREAM_KAFKA_PASSWORD_FILE": str(path)})


@pytest.mark.parametrize(("env", "message"), [
    ({"RUNSTREAM_KAFKA_SECURITY": "SASL_SSL"}, "needs kafka_user"),
    ({"RUNSTREAM_KAFKA_USER": "u", "RUNSTREAM_KAFKA_PASSWORD": "p"}, "would not be used"),
    ({"RUNSTREAM_KAFKA_CA_FILE": "/ca.pem"}, "no TLS"),
    ({"RUNSTREAM_KAFKA_SECURITY": "TLS"}, "must be one of"),
    ({**SASL, "RUNSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "must be one of"),
])
def test_contradictions_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.resolve(env={"RUNSTREAM_KAFKA": "b:9092", **env})


def test_kafka_options_cannot_contradict_the_security_settings() -> None:
    with pytest.raises(ConfigurationError, match="security_protocol"):
        Settings.resolve(env=SASL, explicit={"kafka_options": {"security_protocol": "PLAINTEXT"}})


def test_clickhouse_password_twice_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        Settings.resolve(env={"RUNSTREAM_CLICKHOUSE": "clickhouse://u:a@h/db", "RUNSTREAM_CLICKHOUSE_PASSWORD": "b"})


def test_a_bad_url_is_reported_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(clickhouse="http://u:hunter2@h/db")
    assert "hunter2" not in str(caught.value)


def test_child_processes_get_the_same_security_through_the_environment() -> None:
    s = Settings.resolve(env={**SASL, "RUNSTREAM_CLICKHOUSE": "clickhouses://r:x@h:9440/db"})
    child = Settings.resolve(env={"RUNSTREAM_KAFKA": "b:9094", "RUNSTREAM_CLICKHOUSE": s.clickhouse or "",
                                  **s.security_env()})
    assert child.kafka_client_options() == s.kafka_client_options()
    assert child.clickhouse_password == s.clickhouse_password


def _config(tmp_path: Path, data: dict[str, object], mode: int) -> Path:
    path = tmp_path / "runstream.json"
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_a_settings_file_with_a_password_that_others_can_read_warns(tmp_path: Path) -> None:
    data = {"kafka": "b:9094", "kafka_security": "SASL_SSL", "kafka_user": "u", "kafka_password": "in-the-file"}
    with pytest.warns(ReadableSecretWarning, match="chmod 600"):
        Settings.from_file(_config(tmp_path, data, 0o644), env={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Settings.from_file(_config(tmp_path, data, 0o600), env={}).kafka_password == Secret("in-the-file")
        Settings.from_file(_config(tmp_path, {"kafka": "b:9092"}, 0o644), env={})  # no password: no warning


def test_a_settings_file_may_name_a_password_file(tmp_path: Path) -> None:
    (tmp_path / "kafka.pw").write_text("from-file")
    (tmp_path / "kafka.pw").chmod(0o600)
    data = {"kafka": "b:9094", "kafka_security": "SASL_SSL", "kafka_user": "u", "kafka_password_file": "kafka.pw"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Settings.from_file(_config(tmp_path, data, 0o644), env={})
    assert s.kafka_password == Secret("from-file")


READER_AND_WRITER = {"RUNSTREAM_CLICKHOUSE": "clickhouses://runstream_reader@h:9440/db",
                     "RUNSTREAM_CLICKHOUSE_PASSWORD": "read-secret",
                     "RUNSTREAM_CLICKHOUSE_WRITER": "clickhouses://runstream_writer@h:9440/db",
                     "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD": "write-secret"}


def test_writers_use_the_writer_and_readers_the_reader() -> None:
    s = IngestSettings.resolve(env=READER_AND_WRITER)
    assert s.clickhouse == "clickhouses://runstream_reader@h:9440/db" and s.clickhouse_password == Secret("read-secret")
    assert s.sink_clickhouse == ("clickhouses://runstream_writer@h:9440/db", Secret("write-secret"))
    assert "write-secret" not in repr(s) and {v.reveal() for v in s.secret_values()} == {"read-secret", "write-secret"}
    plain = IngestSettings.resolve(env={"RUNSTREAM_CLICKHOUSE": "clickhouse://h:9000/db"})
    assert plain.sink_clickhouse == ("clickhouse://h:9000/db", None)  # one URL: readers and writers share it
    assert Settings().sink_clickhouse == (None, None)  # chDB


def test_the_writer_url_passes_to_child_processes_and_keeps_its_password_apart() -> None:
    s = Settings.resolve(env={**READER_AND_WRITER, "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD": "",
                              "RUNSTREAM_CLICKHOUSE_WRITER": "clickhouses://runstream_writer:w%40x@h:9440/db"})
    assert s.sink_clickhouse == ("clickhouses://runstream_writer@h:9440/db", Secret("w@x"))
    child = Settings.resolve(env={"RUNSTREAM_CLICKHOUSE": s.clickhouse or "", **s.security_env()})
    assert child.sink_clickhouse == s.sink_clickhouse


@pytest.mark.parametrize(("env", "message"), [
    ({"RUNSTREAM_CLICKHOUSE_WRITER": "clickhouses://w@h:9440/db"}, "clickhouse is not"),
    ({"RUNSTREAM_CLICKHOUSE": "clickhouse://h:9000/db", "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD": "x"},
     "clickhouse_writer .RUNSTREAM_CLICKHOUSE_WRITER. is not"),
    ({"RUNSTREAM_CLICKHOUSE": "clickhouse://h:9000/db", "RUNSTREAM_CLICKHOUSE_WRITER": "http://w:pw@h/db"},
     "clickhouse_writer must be"),
])
def test_writer_contradictions_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Settings.resolve(env=env)
    assert "pw@" not in str(caught.value)
