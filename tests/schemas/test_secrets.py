from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from schemas import secrets
from schemas.secrets import (
    ReadableSecretWarning,
    has_password,
    redact_logs,
    Secret,
    SecretError,
    read_secret_file,
    redact,
    redact_url,
    secret_from_env,
)


def test_secret_never_prints_its_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret]) + repr({"p": secret})
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2") and secret != Secret("other") and bool(secret)
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2"


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_private_file_is_read_without_its_newline(tmp_path: Path) -> None:
    assert read_secret_file(_write(tmp_path / "pw", "s3cret\n", 0o600)).reveal() == "s3cret"


def test_file_readable_by_others_warns(tmp_path: Path) -> None:
    path = _write(tmp_path / "pw", "s3cret\n", 0o644)
    with pytest.warns(ReadableSecretWarning, match="chmod 600"):
        assert read_secret_file(path).reveal() == "s3cret"


def test_empty_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="is empty"):
        read_secret_file(_write(tmp_path / "pw", "\n", 0o600))
    with pytest.raises(SecretError, match="cannot read"):
        read_secret_file(tmp_path / "missing")


def test_secret_from_env_takes_the_value_or_the_file_never_both(tmp_path: Path) -> None:
    path = _write(tmp_path / "pw", "from-file", 0o600)
    assert secret_from_env({}, "X_PASSWORD") is None
    assert secret_from_env({"X_PASSWORD": "direct"}, "X_PASSWORD") == Secret("direct")
    assert secret_from_env({"X_PASSWORD_FILE": str(path)}, "X_PASSWORD") == Secret("from-file")
    with pytest.raises(SecretError, match="not both"):
        secret_from_env({"X_PASSWORD": "a", "X_PASSWORD_FILE": str(path)}, "X_PASSWORD")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("clickhouse://u:p%40ss@h:9000/db?secure=1", "clickhouse://u:***@h:9000/db?secure=1"),
        ("clickhouses://runstream_reader:x@127.0.0.1/runstream", "clickhouses://runstream_reader:***@127.0.0.1/runstream"),
        ("clickhouse://u@h:9000/db", "clickhouse://u@h:9000/db"),
        ("clickhouse://h/db", "clickhouse://h/db"),
        ("clickhouse://u:p@[::1]:9000/db", "clickhouse://u:***@[::1]:9000/db"),
        ("clickhouse://u:p@h:notaport/db", "clickhouse://u:***@h:notaport/db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_masks_urls_and_known_values_in_any_text() -> None:
    text = "cannot reach clickhouse://w:topsecret@h:9440/db (password topsecret, token abc)"
    assert redact(text, [Secret("abc"), None, ""]) == (
        "cannot reach clickhouse://w:***@h:9440/db (password topsecret, token ***)")
    assert redact(text, ["topsecret"]) == "cannot reach clickhouse://w:***@h:9440/db (password ***, token abc)"


def test_redacting_filter_masks_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("runstream.test.redact")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        redact_logs([Secret("hunter2")], logger=logger)
        logger.warning("login %s to %s failed", "hunter2", "clickhouse://u:pw@h/db")
    finally:
        logger.removeHandler(handler)
    assert seen == ["login *** to clickhouse://u:***@h/db failed"]


def test_has_password() -> None:
    assert has_password("clickhouse://u:p@h/db") and not has_password("clickhouse://u@h/db")


def test_exports() -> None:
    assert secrets.__all__ == ["RedactingFilter", "ReadableSecretWarning", "Secret", "SecretError",
                               "check_private_file", "has_password", "read_secret_file", "redact", "redact_logs",
                               "redact_url", "secret_from_env"]


def test_redact_masks_passwords_in_printed_settings() -> None:
    text = "configuration: {'sasl_plain_username': 'u', 'sasl_plain_password': 's3cret', ssl_password=\"k\"}"
    assert redact(text) == "configuration: {'sasl_plain_username': 'u', 'sasl_plain_password': '***', ssl_password=\"***\"}"


def test_kafka_python_admin_configuration_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import schemas.kafka_client  # noqa: F401  (installs the filter)

    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):
        logging.getLogger("kafka.admin.client").debug("Starting KafkaAdminClient with configuration: %s",
                                                      {"sasl_plain_password": "s3cret"})
    assert "s3cret" not in caplog.text and "'sasl_plain_password': '***'" in caplog.text
