"""Private Kafka brokers and ClickHouse servers for tests, run by deploy/local/*.sh.

The shared stack (``make stack-up``) listens on the default ports and every test
may use it. A test that has to stop a broker or a server, or needs one that no
other test writes to, starts its own on free ports instead::

    with KafkaInstance(state_dir=tmp_path / "kafka") as kafka:
        produce(kafka.bootstrap, ...)
        kafka.stop()            # the shared broker keeps running

The instances are real processes started by the same scripts as the shared
stack, so a test that uses one also exercises the scripts. ``secure=True`` starts
one in secure mode (``KAFKA_SECURE=1`` / ``CLICKHOUSE_SECURE=1``): TLS, passwords
and least-privilege principals, whose CA file and passwords the instance exposes.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["REPO_ROOT", "ClickHouseInstance", "KafkaInstance", "StackError", "free_ports"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout these tests run from."""

_LOCAL = REPO_ROOT / "deploy" / "local"
# Longer than the scripts' own start timeouts, so their message wins.
_SCRIPT_TIMEOUT_S = 240


class StackError(RuntimeError):
    """A stack script failed; the message holds what it printed."""


PORT_RANGE_ENV = "RUNSTREAM_TEST_PORTS"
"""``LOW-HIGH``: pick private instances' ports in that range (on a machine shared by several people, each
with a range of their own); unset = any port the kernel hands out."""


def _port_range() -> list[int] | None:
    spec = os.environ.get(PORT_RANGE_ENV)
    if not spec:
        return None
    low, _, high = spec.partition("-")
    try:
        ports = list(range(int(low), int(high) + 1))
    except ValueError:
        raise StackError(f"{PORT_RANGE_ENV} must be LOW-HIGH, got {spec!r}") from None
    random.shuffle(ports)
    return ports


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on 127.0.0.1 right now.

    All sockets are held open until every port is picked, so the ports differ.
    Another process may still take one before the server binds it; the scripts
    then fail with a clear "port is taken" message. ``RUNSTREAM_TEST_PORTS``
    narrows the choice to a range.
    """
    sockets: list[socket.socket] = []
    candidates = _port_range()
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            if candidates is None:
                sock.bind(("127.0.0.1", 0))
                continue
            while True:
                if not candidates:
                    raise StackError(f"no {count} free ports in {PORT_RANGE_ENV}={os.environ[PORT_RANGE_ENV]}")
                try:
                    sock.bind(("127.0.0.1", candidates.pop()))
                    break
                except OSError:
                    continue
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run(script: str, action: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_"))}
    # The Kafka readiness probe uses kafka-python; this interpreter has it.
    env["RUNSTREAM_PYTHON"] = sys.executable
    env.update(settings)
    return subprocess.run(
        [str(_LOCAL / script), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=_SCRIPT_TIMEOUT_S,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")


class _Instance:
    """Start/stop/status through one script, with the settings of one instance."""

    __slots__ = ()
    _script: str

    def _settings(self) -> dict[str, str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the process if it is not running and wait until it answers."""
        _check(_run(self._script, "start", self._settings()), f"{self} start")

    def stop(self) -> None:
        """Stop the process and wait until it has exited; a no-op when stopped."""
        _check(_run(self._script, "stop", self._settings()), f"{self} stop")

    def is_running(self) -> bool:
        """True when the process runs and answers a real request."""
        return _run(self._script, "status", self._settings()).returncode == 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class KafkaInstance(_Instance):
    """A single-node KRaft broker on 127.0.0.1, run by deploy/local/kafka.sh.

    Ports left out are picked free at construction. ``state_dir`` defaults to the
    script's own, ``deploy/local/.state/kafka-<port>``.
    """

    __slots__ = ("port", "controller_port", "state_dir", "secure", "sasl_port")
    _script = "kafka.sh"

    def __init__(
        self,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        state_dir: Path | None = None,
        secure: bool = False,
        sasl_port: int | None = None,
    ) -> None:
        picked = free_ports(3)
        self.port = port if port is not None else picked[0]
        self.controller_port = controller_port if controller_port is not None else picked[1]
        self.state_dir = state_dir
        self.secure = secure
        self.sasl_port = sasl_port if sasl_port is not None else picked[2]

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listener of a secure instance, ``127.0.0.1:<sasl_port>``."""
        return f"127.0.0.1:{self.sasl_port}"

    def _state(self) -> Path:
        return self.state_dir if self.state_dir is not None else _LOCAL / ".state" / f"kafka-{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA a secure instance's certificate chains to."""
        return self._state() / "tls" / "ca.pem"

    def password_file(self, principal: str) -> Path:
        """Where a secure instance keeps ``principal``'s password (``runstream-producer``, ...)."""
        return self._state() / "secrets" / f"{principal}.password"

    def client_options(self, principal: str) -> dict[str, str]:
        """kafka-python options that log in to the SASL_SSL listener as ``principal``."""
        return {
            "bootstrap_servers": self.sasl_bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(self.ca_file),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": principal,
            "sasl_plain_password": self.password_file(principal).read_text(encoding="utf-8").strip(),
        }

    def grant(self, *, events_topic: str, dlq_topic: str, group: str) -> None:
        """Create two topics and give the principals their rights on them and on ``group``."""
        proc = subprocess.run(
            [sys.executable, str(_LOCAL / "kafka" / "access.py"), "--admin", self.bootstrap, "--no-credentials",
             "--events-topic", events_topic, "--dlq-topic", dlq_topic, "--group", group],
            capture_output=True, text=True, timeout=_SCRIPT_TIMEOUT_S, check=False,
        )
        _check(proc, f"{self} grant")

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients connect to, ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def _settings(self) -> dict[str, str]:
        settings = {"KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.controller_port)}
        if self.secure:
            settings.update(KAFKA_SECURE="1", KAFKA_SASL_PORT=str(self.sasl_port))
        if self.state_dir is not None:
            settings["KAFKA_STATE_DIR"] = str(self.state_dir)
        return settings

    def __repr__(self) -> str:
        return f"KafkaInstance(port={self.port}, controller_port={self.controller_port})"


class ClickHouseInstance(_Instance):
    """A ClickHouse server on 127.0.0.1, run by deploy/local/clickhouse.sh.

    ``port`` is the native-protocol port; ports left out are picked free at
    construction. ``database`` is created on start. ``state_dir`` defaults to the
    script's own, ``deploy/local/.state/clickhouse-<port>``.
    """

    __slots__ = ("port", "http_port", "interserver_port", "state_dir", "database", "secure", "secure_port")
    _script = "clickhouse.sh"

    def __init__(
        self,
        port: int | None = None,
        *,
        http_port: int | None = None,
        interserver_port: int | None = None,
        state_dir: Path | None = None,
        database: str = "runstream",
        secure: bool = False,
        secure_port: int | None = None,
    ) -> None:
        picked = free_ports(4)
        self.port = port if port is not None else picked[0]
        self.http_port = http_port if http_port is not None else picked[1]
        self.interserver_port = interserver_port if interserver_port is not None else picked[2]
        self.state_dir = state_dir
        self.database = database
        self.secure = secure
        self.secure_port = secure_port if secure_port is not None else picked[3]

    def _state(self) -> Path:
        return self.state_dir if self.state_dir is not None else _LOCAL / ".state" / f"clickhouse-{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA a secure instance's certificate chains to."""
        return self._state() / "tls" / "ca.pem"

    def password_file(self, user: str) -> Path:
        """Where a secure instance keeps ``user``'s password (``default``, ``runstream_writer``, ``runstream_reader``)."""
        return self._state() / "secrets" / f"{user}.password"

    def password(self, user: str) -> str:
        """A secure instance's password of ``user``."""
        return self.password_file(user).read_text(encoding="utf-8").strip()

    def secure_url(self, user: str) -> str:
        """``clickhouses://user@127.0.0.1:<secure_port>/<database>?ca_certs=<CA>`` (no password in it)."""
        return f"clickhouses://{user}@127.0.0.1:{self.secure_port}/{self.database}?ca_certs={self.ca_file}"

    @property
    def url(self) -> str:
        """The native-protocol URL, ``clickhouse://127.0.0.1:<port>/<database>``."""
        return f"clickhouse://127.0.0.1:{self.port}/{self.database}"

    @property
    def http_url(self) -> str:
        """The HTTP interface, ``http://127.0.0.1:<http_port>/``."""
        return f"http://127.0.0.1:{self.http_port}/"

    def _settings(self) -> dict[str, str]:
        settings = {
            "CLICKHOUSE_TCP_PORT": str(self.port),
            "CLICKHOUSE_HTTP_PORT": str(self.http_port),
            "CLICKHOUSE_INTERSERVER_PORT": str(self.interserver_port),
            "CLICKHOUSE_DATABASE": self.database,
        }
        if self.secure:
            settings.update(CLICKHOUSE_SECURE="1", CLICKHOUSE_TCP_SECURE_PORT=str(self.secure_port))
        if self.state_dir is not None:
            settings["CLICKHOUSE_STATE_DIR"] = str(self.state_dir)
        return settings

    def __repr__(self) -> str:
        return f"ClickHouseInstance(port={self.port}, http_port={self.http_port})"
