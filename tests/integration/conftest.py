"""Fixtures for tests against a real Kafka broker and a real ClickHouse server.

- ``kafka_bootstrap`` / ``clickhouse_url``: the shared local stack, from
  ``RUNSTREAM_KAFKA`` (default ``127.0.0.1:9092``) and ``RUNSTREAM_CLICKHOUSE``
  (default ``clickhouse://127.0.0.1:9000/runstream``). ``make test`` starts it;
  by hand, ``make stack-up``. When it does not answer, every test that asks for
  it fails with a message saying so. Integration tests never skip.
- ``private_kafka`` / ``private_clickhouse``: instances of their own on free
  ports, one per session, stopped at the end. For tests that stop or restart a
  broker or server: such a test starts it again before it ends (``start()`` is
  a no-op on a running instance).
- ``secure_kafka`` / ``secure_clickhouse``: private instances in secure mode
  (TLS, SASL/SCRAM and ACLs; TLS and least-privilege users), one per session.
- ``unique_name``: a topic/database/table name no other test uses, so tests
  never see each other's data on the shared stack.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from clickhouse_driver import Client

# kafka-python 3.0.12 loads its protocol schemas with importlib.resources.read_text,
# deprecated on Python 3.11 (and un-deprecated in 3.13), while the suite turns
# warnings into errors. All of them load when the package is first imported, so
# one import here, with only that warning silenced, serves the whole session.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    import kafka  # noqa: F401
from kafka.admin import KafkaAdminClient

from stack import ClickHouseInstance, KafkaInstance

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_CLICKHOUSE = "clickhouse://127.0.0.1:9000/runstream"

_START_HINT = (
    "Integration tests need the real local stack: run `make stack-up` "
    "(or `make test`, which starts it, runs everything and stops it), "
    "or set {var} to one that runs."
)


def _unreachable(what: str, var: str, reason: str) -> str:
    return f"{what} does not answer ({reason}).\n" + _START_HINT.format(var=var)


def _refused(host: str, port: int) -> str | None:
    """Why a TCP connection to host:port fails, or None when it connects.

    Checked before the client libraries try: on a refused connection they log
    tracebacks and leave sockets for the garbage collector, which buries the
    one message that matters.
    """
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the shared broker; fails when it does not answer.

    A failure here is cached by pytest for the session: later tests fail at once.
    """
    bootstrap = os.environ.get("RUNSTREAM_KAFKA", DEFAULT_KAFKA)
    what = f"Kafka at {bootstrap} (RUNSTREAM_KAFKA)"
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    reason = _refused(host, int(port))
    if reason is None:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="runstream-tests",
                bootstrap_timeout_ms=5000,
                request_timeout_ms=5000,
            )
            try:
                admin.describe_cluster()
            finally:
                admin.close()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
    if reason is not None:
        pytest.fail(_unreachable(what, "RUNSTREAM_KAFKA", reason), pytrace=False)
    return bootstrap


@pytest.fixture(scope="session")
def clickhouse_url() -> str:
    """Native-protocol URL of the shared server; fails when it does not answer.

    The URL's database is created if missing, so ``Client.from_url(url)`` works.
    """
    url = os.environ.get("RUNSTREAM_CLICKHOUSE", DEFAULT_CLICKHOUSE)
    what = f"ClickHouse at {url} (RUNSTREAM_CLICKHOUSE)"
    parts = urlsplit(url)
    database = parts.path.strip("/") or "default"
    reason = _refused(parts.hostname or "127.0.0.1", parts.port or 9000)
    if reason is None:
        # Connect to "default": the URL's own database may not exist yet.
        client = Client.from_url(urlunsplit(parts._replace(path="/default")))
        try:
            client.execute("SELECT 1")
            client.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            client.disconnect()
    if reason is not None:
        pytest.fail(_unreachable(what, "RUNSTREAM_CLICKHOUSE", reason), pytrace=False)
    return url


@pytest.fixture(scope="session")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaInstance]:
    """A broker of this session's own on free ports; stopped when the session ends."""
    instance = KafkaInstance(state_dir=tmp_path_factory.mktemp("private-kafka"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def private_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseInstance]:
    """A ClickHouse server of this session's own on free ports; stopped at the end."""
    instance = ClickHouseInstance(state_dir=tmp_path_factory.mktemp("private-clickhouse"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaInstance]:
    """A broker in secure mode (SASL_SSL + SCRAM-SHA-512, ACLs) of this session's own."""
    instance = KafkaInstance(state_dir=tmp_path_factory.mktemp("secure-kafka"), secure=True)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def secure_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseInstance]:
    """A ClickHouse server in secure mode (native TLS, writer and reader users) of this session's own."""
    instance = ClickHouseInstance(state_dir=tmp_path_factory.mktemp("secure-clickhouse"), secure=True)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run, valid as a Kafka topic and a ClickHouse identifier.

    ``rs_<test name>_<random>``: lower case letters, digits and underscores only,
    starting with a letter, at most 60 characters. Add suffixes for more names.
    """
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:36]
    return f"rs_{base}_{uuid.uuid4().hex[:12]}"
