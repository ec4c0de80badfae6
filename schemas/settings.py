"""Every process's settings in one place: names, ``RUNSTREAM_*`` variables, defaults and precedence.

Each process builds one frozen settings object at its entry point and passes
it down; nothing past that point reads the environment::

    Settings                  shared by every process: where Kafka, ClickHouse and the home are
    ├── WorkspaceSettings     the SDK: the emitter's knobs and read-back timeouts (Workspace)
    ├── IngestSettings        runstream ingest: batching, retries, the consumer group
    └── ExporterSettings      runstream exporter: port and poll interval

Precedence, highest first: explicit values (``Workspace(...)`` arguments,
command-line flags), the environment (:data:`ENV`), a ``runstream.json``
(:meth:`Settings.from_file`), the defaults below. Nothing configured is the
embedded default: events go to the spool under ``$RUNSTREAM_HOME/spool`` and
are stored in chDB under ``$RUNSTREAM_HOME/chdb``; no server is needed.

Security (README, "Security"): ``kafka_security`` (``SASL_SSL`` = TLS and a
SCRAM login), ``kafka_ca_file``, ``kafka_user`` and ``kafka_password`` build the
TLS/SASL options of every Kafka client; ``clickhouse`` may be ``clickhouses://``
with ``?ca_certs=``. Passwords (:data:`ENV_SECRETS`) come from the environment,
from the file a ``*_FILE`` variable names, or from ``runstream.json`` (a
warning when other users can read it), never from a command line. They are
held as :class:`~schemas.secrets.Secret` (printed ``***``); a password written
into the ClickHouse URL is moved into ``clickhouse_password``, so
``Settings.clickhouse`` can be logged.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import ConfigurationError
from .limits import RunLimits
from .secrets import Secret, SecretError, check_private_file, read_secret_file, redact_url, secret_from_env

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_DLQ_TOPIC",
    "DEFAULT_GROUP",
    "DEFAULT_HOME",
    "DEFAULT_SERVER",
    "DEFAULT_TOPIC",
    "ENV",
    "ENV_CONFIG",
    "ENV_SECRETS",
    "KAFKA_SECURITY_PROTOCOLS",
    "ExporterSettings",
    "IngestSettings",
    "LOCAL_CLICKHOUSE",
    "LOCAL_KAFKA",
    "Settings",
    "WorkspaceSettings",
    "find_config",
]

DEFAULT_TOPIC = "runstream.events"
DEFAULT_DLQ_TOPIC = "runstream.events.dlq"
DEFAULT_GROUP = "runstream-ingest"
DEFAULT_HOME = ".runstream"
"""Relative to the working directory, like ``mlruns/``: a sweep's data sits beside its code."""
CONFIG_FILE_NAME = "runstream.json"

LOCAL_KAFKA = "127.0.0.1:9092"
"""The broker ``deploy/local/kafka.sh`` starts; the exporter's default."""
LOCAL_CLICKHOUSE = "clickhouse://127.0.0.1:9000/runstream"
"""The server ``deploy/local/clickhouse.sh`` starts; the exporter's default."""

DEFAULT_SERVER = "http://127.0.0.1:5000"
"""``runstream server``'s default address (MLflow's port)."""

ENV: Mapping[str, str] = {
    "kafka": "RUNSTREAM_KAFKA",
    "clickhouse": "RUNSTREAM_CLICKHOUSE",
    "clickhouse_writer": "RUNSTREAM_CLICKHOUSE_WRITER",
    "home": "RUNSTREAM_HOME",
    "topic": "RUNSTREAM_TOPIC",
    "server": "RUNSTREAM_SERVER",
    "kafka_security": "RUNSTREAM_KAFKA_SECURITY",
    "kafka_ca_file": "RUNSTREAM_KAFKA_CA_FILE",
    "kafka_sasl_mechanism": "RUNSTREAM_KAFKA_SASL_MECHANISM",
    "kafka_user": "RUNSTREAM_KAFKA_USER",
}
"""Setting -> the environment variable it is read from (every process reads the same ones)."""
ENV_SECRETS: Mapping[str, str] = {
    "kafka_password": "RUNSTREAM_KAFKA_PASSWORD",
    "clickhouse_password": "RUNSTREAM_CLICKHOUSE_PASSWORD",
    "clickhouse_writer_password": "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD",
}
"""Password setting -> its variable; ``<variable>_FILE`` names a file holding it instead (never both)."""
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_SECURITY_OPTIONS = frozenset({"security_protocol", "ssl_cafile", "sasl_mechanism", "sasl_plain_username",
                               "sasl_plain_password"})
"""kafka-python options the ``kafka_*`` security settings set; not also in ``kafka_options``."""
_SECRET_OPTIONS = frozenset({"sasl_plain_password", "ssl_password"})
"""kafka-python options that hold a password: kept as a Secret, revealed only to the client."""
ENV_CONFIG = "RUNSTREAM_CONFIG"
"""Path of the ``runstream.json`` that ``Workspace.from_config()`` reads."""

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"[^\s,:/]+:\d{1,5}")


def _positive_int(settings: Settings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")


def _positive_seconds(settings: Settings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """What every process shares. Build with :meth:`resolve` (or directly, in tests)."""

    kafka: str | None = None
    """Bootstrap servers, ``host:port[,host:port...]``; None = the embedded spool."""
    clickhouse: str | None = None
    """``clickhouse://user@host:9000/db`` (``clickhouses://...?ca_certs=ca.pem`` for TLS); None = chDB under
    ``home``. Every read goes here: with least-privilege users, this is the read-only ``runstream_reader``."""
    clickhouse_writer: str | None = None
    """Where ingest inserts and migrations run (``runstream_writer``), when that is another user than
    ``clickhouse``'s; None = ``clickhouse``. Only writers (``runstream ingest``, a home's owner) use it."""
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).absolute())
    """Local data: ``spool/``, ``outbox/``, ``chdb/``, ``deadletter/``, the owner lock."""
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    group: str = DEFAULT_GROUP
    """The ingest workers' consumer group."""
    topic_partitions: int = 8
    """Partitions of a topic runstream has to create (broker auto-creation is never relied on)."""
    topic_replication_factor: int = -1
    """-1 = the broker's ``default.replication.factor``."""
    kafka_security: str = "PLAINTEXT"
    """How every Kafka client connects: ``PLAINTEXT``, ``SSL`` (TLS), ``SASL_SSL`` (TLS and a SCRAM login;
    what a secure broker wants) or ``SASL_PLAINTEXT``. Nothing ever falls back to plaintext."""
    kafka_ca_file: Path | None = None
    """TLS: the PEM file of the CA that signed the brokers' certificates; None = the system's CAs."""
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_user: str | None = None
    """SASL: the principal this process logs in as (``runstream-producer``, ``runstream-ingest``, ...)."""
    kafka_password: Secret | None = None
    """SASL: its password (``RUNSTREAM_KAFKA_PASSWORD`` or ``..._FILE``); printed as ``***``."""
    clickhouse_password: Secret | None = None
    """The ClickHouse user's password (``RUNSTREAM_CLICKHOUSE_PASSWORD`` or ``..._FILE``, or the URL's)."""
    clickhouse_writer_password: Secret | None = None
    """``clickhouse_writer``'s password (``RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD`` or ``..._FILE``)."""
    kafka_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra kafka-python client settings (``ssl_check_hostname``, client certificates...). The TLS/SASL
    basics have settings of their own (above); a password given here is held as a Secret."""
    limits: RunLimits = field(default_factory=RunLimits)
    heartbeat_lost_s: float = 300.0
    """A Running run silent this long reads as Failed ("process lost") and stops counting as active."""
    server: str = DEFAULT_SERVER
    """``runstream server``'s address: the MLflow tracking URI (``Workspace.get_mlflow_tracking_uri()``), and
    where the notebook widget finds the web UI."""

    _MANAGED_KAFKA_OPTIONS = frozenset({"bootstrap_servers"})

    def __post_init__(self) -> None:
        if self.kafka is not None:
            servers = [s.strip() for s in self.kafka.split(",")]
            if not all(_HOST_PORT.fullmatch(s) for s in servers):
                raise ConfigurationError(f"kafka must be host:port[,host:port...], got {self.kafka!r}")
        for name in ("clickhouse", "clickhouse_writer"):
            url = getattr(self, name)
            if url is not None and not url.startswith(("clickhouse://", "clickhouses://")):
                raise ConfigurationError(f"{name} must be a clickhouse://user@host:port/db URL, got {redact_url(url)!r}")
        if self.clickhouse_writer is not None and self.clickhouse is None:
            raise ConfigurationError("clickhouse_writer (RUNSTREAM_CLICKHOUSE_WRITER) is set but clickhouse is not: "
                                     "set RUNSTREAM_CLICKHOUSE to the same server's reader URL")
        self._check_security()
        if not isinstance(self.home, Path):
            raise ConfigurationError(f"home must be a Path, got {self.home!r}")
        if not isinstance(self.server, str) or not self.server.startswith(("http://", "https://")):
            raise ConfigurationError(f"server must be an http:// or https:// URL, got {self.server!r}")
        for name in ("topic", "dlq_topic", "group"):
            if not _TOPIC.fullmatch(getattr(self, name)):
                raise ConfigurationError(f"{name} must be 1-249 of [A-Za-z0-9._-], got {getattr(self, name)!r}")
        if self.topic == self.dlq_topic:
            raise ConfigurationError("the dead-letter topic must differ from the events topic")
        _positive_int(self, "topic_partitions")
        if self.topic_replication_factor != -1 and self.topic_replication_factor < 1:
            raise ConfigurationError("topic_replication_factor must be -1 (broker default) or >= 1")
        if not isinstance(self.limits, RunLimits):
            raise ConfigurationError("limits must be a schemas.RunLimits")
        _positive_seconds(self, "heartbeat_lost_s")
        clash = sorted(set(self.kafka_options) & self._MANAGED_KAFKA_OPTIONS)
        if clash:
            raise ConfigurationError(f"kafka_options may not set {', '.join(clash)}: runstream manages them")

    def _check_security(self) -> None:
        set_ = object.__setattr__  # frozen: normalised once, here
        for name in ENV_SECRETS:
            value = getattr(self, name)
            if isinstance(value, str):
                set_(self, name, Secret(value) if value else None)
            elif value is not None and not isinstance(value, Secret):
                raise ConfigurationError(f"{name} must be a str or a schemas.secrets.Secret")
        for name in ("clickhouse", "clickhouse_writer"):
            url = getattr(self, name)
            url_password = _url_password(url) if url is not None else None
            if url is not None and url_password is not None:
                if getattr(self, f"{name}_password") is not None:
                    raise ConfigurationError(f"the ClickHouse password is given twice: in the {name} URL and in "
                                             f"{name}_password ({ENV_SECRETS[f'{name}_password']}[_FILE]); keep one")
                set_(self, f"{name}_password", Secret(url_password))
                set_(self, name, _url_without_password(url))
        if self.clickhouse_writer_password is not None and self.clickhouse_writer is None:
            raise ConfigurationError("clickhouse_writer_password is set but clickhouse_writer "
                                     "(RUNSTREAM_CLICKHOUSE_WRITER) is not")
        security = str(self.kafka_security).upper()
        if security not in KAFKA_SECURITY_PROTOCOLS:
            raise ConfigurationError(
                f"kafka_security must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}, got {self.kafka_security!r}")
        set_(self, "kafka_security", security)
        mechanism = str(self.kafka_sasl_mechanism).upper()
        if mechanism not in _SASL_MECHANISMS:
            raise ConfigurationError(
                f"kafka_sasl_mechanism must be one of {', '.join(_SASL_MECHANISMS)}, got {self.kafka_sasl_mechanism!r}")
        set_(self, "kafka_sasl_mechanism", mechanism)
        if self.kafka_ca_file is not None:
            set_(self, "kafka_ca_file", Path(self.kafka_ca_file).expanduser().absolute())
        sasl = security.startswith("SASL")
        if sasl and not (self.kafka_user and self.kafka_password):
            raise ConfigurationError(f"kafka_security {security} needs kafka_user (RUNSTREAM_KAFKA_USER) and "
                                     "kafka_password (RUNSTREAM_KAFKA_PASSWORD or RUNSTREAM_KAFKA_PASSWORD_FILE)")
        if not sasl and (self.kafka_user or self.kafka_password):
            raise ConfigurationError(f"a Kafka user and password are set but kafka_security is {security}: they "
                                     "would not be used; set RUNSTREAM_KAFKA_SECURITY=SASL_SSL")
        if security in ("PLAINTEXT", "SASL_PLAINTEXT") and self.kafka_ca_file is not None:
            raise ConfigurationError(f"kafka_ca_file is set but kafka_security is {security} (no TLS): "
                                     "set RUNSTREAM_KAFKA_SECURITY=SASL_SSL or SSL")
        options = dict(self.kafka_options)
        secured = security != "PLAINTEXT"
        clash = sorted(set(options) & _SECURITY_OPTIONS) if secured else []
        if clash:
            raise ConfigurationError(f"kafka_options may not set {', '.join(clash)} when kafka_security is "
                                     f"{security}: the kafka_* settings set them")
        for key in _SECRET_OPTIONS & set(options):
            if isinstance(options[key], str):
                options[key] = Secret(options[key])
        set_(self, "kafka_options", options)

    @property
    def has_secrets(self) -> bool:
        """True when a password is set (a settings file written from these must stay private)."""
        return (any(getattr(self, name) is not None for name in ENV_SECRETS)
                or any(key in self.kafka_options for key in _SECRET_OPTIONS))

    def secret_values(self) -> list[Secret]:
        """Every password these settings hold, for :func:`schemas.secrets.redact`."""
        found = [s for s in (getattr(self, name) for name in ENV_SECRETS) if s is not None]
        return found + [v for k, v in self.kafka_options.items() if k in _SECRET_OPTIONS and isinstance(v, Secret)]

    def security_env(self) -> dict[str, str]:
        """The ``RUNSTREAM_*`` variables that give a child process these TLS/SASL settings and passwords.

        For processes runstream starts itself (a home's owner, a submitted job): passwords go through
        the environment, never a command line.
        """
        env = {ENV["kafka_security"]: self.kafka_security, ENV["kafka_sasl_mechanism"]: self.kafka_sasl_mechanism}
        if self.kafka_ca_file is not None:
            env[ENV["kafka_ca_file"]] = str(self.kafka_ca_file)
        if self.kafka_user:
            env[ENV["kafka_user"]] = self.kafka_user
        if self.clickhouse_writer is not None:
            env[ENV["clickhouse_writer"]] = self.clickhouse_writer
        for name, var in ENV_SECRETS.items():
            secret = getattr(self, name)
            if secret is not None:
                env[var] = secret.reveal()
        return env

    # -- where things are ----------------------------------------------------------------------

    @property
    def sink_clickhouse(self) -> tuple[str | None, Secret | None]:
        """Where a writer (ingest, migrations) connects and with which password: ``clickhouse_writer`` when set,
        else ``clickhouse``; (None, None) = chDB under ``home``."""
        if self.clickhouse_writer is not None:
            return self.clickhouse_writer, self.clickhouse_writer_password
        return self.clickhouse, self.clickhouse_password

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: events go through the local spool."""
        return self.kafka is None

    @property
    def spool_dir(self) -> Path:
        """The embedded event log: what ingest reads when there is no broker."""
        return self.home / "spool"

    @property
    def outbox_dir(self) -> Path:
        """Kafka mode: batches the broker could not take yet, replayed when it answers."""
        return self.home / "outbox"

    @property
    def deadletter_dir(self) -> Path:
        """Embedded mode: messages ingest refused, with why."""
        return self.home / "deadletter"

    @property
    def ingest_state_dir(self) -> Path:
        """The spool source's read position."""
        return self.home / "ingest"

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection settings shared by every Kafka client of this process (TLS/SASL go here)."""
        if self.kafka is None:
            raise ConfigurationError("no Kafka is configured (set RUNSTREAM_KAFKA or pass kafka=)")
        options: dict[str, Any] = {"bootstrap_servers": [s.strip() for s in self.kafka.split(",")]}
        if self.kafka_security != "PLAINTEXT":
            options["security_protocol"] = self.kafka_security
        if self.kafka_security in ("SSL", "SASL_SSL") and self.kafka_ca_file is not None:
            options["ssl_cafile"] = str(self.kafka_ca_file)
        if self.kafka_security.startswith("SASL"):
            assert self.kafka_user and self.kafka_password  # checked in __post_init__
            options.update(sasl_mechanism=self.kafka_sasl_mechanism, sasl_plain_username=self.kafka_user,
                           sasl_plain_password=self.kafka_password.reveal())
        for key, value in self.kafka_options.items():
            options[key] = value.reveal() if isinstance(value, Secret) else value
        return options

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def resolve(
        cls,
        explicit: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
        config_dir: Path | None = None,
    ) -> Self:
        """Build from explicit values, the environment and a parsed config file, in that precedence.

        ``explicit`` values of None count as "not given". A relative ``home``
        from the config file is relative to the file's folder; elsewhere, to the
        working directory. Unknown keys are an error: a typo must not silently
        keep a default.
        """
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        file_keys = {f"{name}_file" for name in ENV_SECRETS}
        for source_name, source in (("runstream.json", config or {}), ("settings", explicit or {})):
            allowed = set(known) | (file_keys if source_name == "runstream.json" else set())
            unknown = sorted(set(source) - allowed)
            if unknown:
                raise ConfigurationError(
                    f"{source_name}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        if config:
            values.update(config)
            for name in ENV_SECRETS:  # runstream.json may name a file instead: "kafka_password_file"
                file_name = values.pop(f"{name}_file", None)
                if file_name is not None:
                    if values.get(name) is not None:
                        raise ConfigurationError(f"runstream.json: {name} and {name}_file are both set; keep one")
                    path = Path(str(file_name)).expanduser()
                    try:
                        values[name] = read_secret_file(path if path.is_absolute() or config_dir is None
                                                        else config_dir / path)
                    except SecretError as exc:
                        raise ConfigurationError(f"runstream.json: {exc}") from None
            if values.get("home") is not None:
                home = Path(str(values["home"])).expanduser()
                values["home"] = home if home.is_absolute() or config_dir is None else config_dir / home
            if isinstance(values.get("limits"), Mapping):
                try:
                    values["limits"] = RunLimits.from_mapping(values["limits"])
                except ValueError as exc:
                    raise ConfigurationError(f"runstream.json: {exc}") from exc
        for name, var in ENV.items():
            if env.get(var):
                values[name] = env[var]
        try:
            for name, var in ENV_SECRETS.items():
                secret = secret_from_env(env, var)
                if secret is not None:
                    values[name] = secret
        except SecretError as exc:
            raise ConfigurationError(str(exc)) from None
        values.update({name: value for name, value in (explicit or {}).items() if value is not None})
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser().absolute()
        for name, value in values.items():
            # JSON and flags give 5 where a float is meant; the type checks below want 5.0.
            if isinstance(known[name].default, float) and isinstance(value, int) and not isinstance(value, bool):
                values[name] = float(value)
        try:
            return cls(**values)
        except ConfigurationError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, explicit: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Self:
        """Settings from a ``runstream.json`` (a JSON object of settings), the environment and ``explicit``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path}: expected a JSON object of settings")
        settings = cls.resolve(explicit, env=env, config=data, config_dir=path.resolve().parent)
        if _holds_a_password(data):
            check_private_file(path, "settings file")
        return settings


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkspaceSettings(Settings):
    """The SDK: where a training process's events go, how the emitter behaves, how reads wait."""

    linger_ms: int = 50
    """The emitter sends what was logged at most this long ago..."""
    batch_points: int = 16_384
    """...or as soon as one run has this many buffered points (one ScalarBatch message)."""
    max_buffer_bytes: int = 64 * 1024 * 1024
    """Memory bound of buffered and unacknowledged events; past it, spill to the outbox, then block or raise."""
    on_buffer_full: Literal["block", "raise"] = "block"
    """When the bound is hit and nothing drains (Kafka and disk both failing): wait, or raise BufferFull."""
    heartbeat_interval_s: float = 30.0
    flush_timeout_s: float = 30.0
    """How long ``complete()``/``fail()``/``cancel()`` wait for their events to be delivered."""
    exit_timeout_s: float = 10.0
    """At interpreter exit and on SIGTERM: how long to wait for delivery before leaving the rest in the outbox."""
    stall_timeout_s: float = 5.0
    """Kafka: unacknowledged this long means unreachable; batches go to the outbox until it answers."""
    connect_timeout_s: float = 5.0
    """Kafka: how long one connection attempt (bootstrap, metadata, topic creation) may take."""
    file_chunk_bytes: int = 512 * 1024
    install_signal_handlers: bool = True
    """Flush on SIGTERM (chaining to any previous handler); only ever installed from the main thread."""
    visible_timeout_s: float = 30.0
    """Reading back: how long to wait for this process's own events to become visible."""
    owner_start_timeout_s: float = 60.0
    """Embedded reads: how long to wait for the home's owner to answer (starting one takes a few seconds)."""
    owner_idle_s: float = 30.0
    """Embedded reads: an owner that a reader started exits after this long without a query."""

    _MANAGED_KAFKA_OPTIONS = frozenset({
        "bootstrap_servers", "acks", "enable_idempotence", "key_serializer", "value_serializer",
        "compression_type", "allow_auto_create_topics", "transactional_id", "retries",
    })

    def __post_init__(self) -> None:
        Settings.__post_init__(self)
        _positive_int(self, "linger_ms", "batch_points", "max_buffer_bytes", "file_chunk_bytes")
        _positive_seconds(self, "heartbeat_interval_s", "flush_timeout_s", "exit_timeout_s", "stall_timeout_s",
                          "connect_timeout_s", "visible_timeout_s", "owner_start_timeout_s", "owner_idle_s")
        if self.on_buffer_full not in ("block", "raise"):
            raise ConfigurationError(f"on_buffer_full must be 'block' or 'raise', got {self.on_buffer_full!r}")
        # A message must fit Kafka's default 1 MiB limit with its envelope.
        if self.file_chunk_bytes > 900 * 1024:
            raise ConfigurationError("file_chunk_bytes must be at most 900 KiB (Kafka's message limit is 1 MiB)")
        if self.batch_points > 50_000:
            raise ConfigurationError("batch_points must be at most 50,000 (one batch is one Kafka message)")
        if self.max_buffer_bytes < 4 * self.batch_points * 32:
            raise ConfigurationError("max_buffer_bytes must hold at least four full batches (batch_points * 128 bytes)")


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestSettings(Settings):
    """``runstream ingest``: Kafka (or the spool) -> ClickHouse (or chDB), batching and retries."""

    metrics_port: int | None = 9464
    """Prometheus endpoint; None disables it (tests, the owner a reader starts)."""
    flush_rows: int = 500_000
    """Flush when this many rows (all tables) are buffered... Each flush is one part per table in ClickHouse,
    and parts are merged again and again as they accumulate: on 18.16, 100,000-row inserts of
    ``metric_scalars`` cost the server about 1.6x the CPU per point of 500,000-row ones, merges included."""
    flush_bytes: int = 32 * 1024 * 1024
    """...or when the messages behind them hold this many bytes (file chunks are up to 512 KiB each)..."""
    flush_interval_s: float = 1.0
    """...or when the oldest buffered row is this old (bounds log-to-queryable latency: p99 about 1.5 s)."""
    poll_max_records: int = 16
    """Messages taken per poll, all decoded before the next flush check. A scalar message holds up to
    16,384 points, so this bounds one poll at about 0.26 M points. At 500, ingest's RSS reached 700 MB
    in the end-to-end benchmark; at 16 it stays near 200 MB at the same throughput."""
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    """Sink retries back off exponentially from ``retry_initial_s`` up to this cap, for ever."""
    shutdown_timeout_s: float = 8.0
    """SIGTERM: the final flush may take this long; then the worker exits without committing (data is re-read)."""
    rebalance_flush_timeout_s: float = 5.0
    """A rebalance waits this long at most for the worker to write and commit its batch (else the batch is
    dropped and read again by the partition's next owner). Below the session timeout."""
    session_timeout_ms: int = 10_000
    """Kafka group session timeout: how soon a killed worker's partitions move to another."""
    max_cached_runs: int = 10_000
    """Per-run limit counters kept in memory; the least recently used are dropped after a flush."""
    serve_queries: bool = True
    """Embedded mode: answer readers' queries on the home's query socket while this process owns chDB."""
    reader_time_limit_s: float = 10.0
    """Embedded mode: a reader's query (over the home's query socket) stops after this long. Readers use a
    read-only connection of their own, so ingest never waits for one."""

    def __post_init__(self) -> None:
        Settings.__post_init__(self)
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError(f"metrics port out of range: {self.metrics_port}")
        _positive_int(self, "flush_rows", "flush_bytes", "poll_max_records", "max_cached_runs", "session_timeout_ms")
        _positive_seconds(self, "flush_interval_s", "retry_initial_s", "retry_max_s", "shutdown_timeout_s",
                          "rebalance_flush_timeout_s", "reader_time_limit_s")
        if self.retry_max_s < self.retry_initial_s:
            raise ConfigurationError("retry_max_s must be >= retry_initial_s")
        if self.rebalance_flush_timeout_s * 1000 >= self.session_timeout_ms:
            raise ConfigurationError("rebalance_flush_timeout_s must be below the session timeout "
                                     f"({self.session_timeout_ms} ms): the group waits for it")

    @property
    def embedded_source(self) -> bool:
        """True when events come from the local spool rather than Kafka."""
        return self.kafka is None

    @property
    def embedded_sink(self) -> bool:
        """True when rows go to chDB under ``home`` rather than a ClickHouse server."""
        return self.clickhouse is None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExporterSettings(Settings):
    """``runstream exporter``: Kafka lag and ClickHouse health, polled apart from the workers."""

    port: int = 9465
    host: str = "0.0.0.0"
    interval_s: float = 15.0
    timeout_s: float = 10.0
    """Longest wait for one source's poll; past it the source counts as down."""

    def __post_init__(self) -> None:
        Settings.__post_init__(self)
        if self.kafka is None or self.clickhouse is None:
            raise ConfigurationError("the exporter needs both a Kafka bootstrap and a ClickHouse URL")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be in 0..65535, got {self.port}")
        _positive_seconds(self, "interval_s", "timeout_s")


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _url_without_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _holds_a_password(data: Mapping[str, Any]) -> bool:
    """A runstream.json that holds a password itself (not a file name): it must stay private."""
    options = data.get("kafka_options")
    urls = [data.get("clickhouse"), data.get("clickhouse_writer")]
    return (any(bool(data.get(name)) for name in ENV_SECRETS)
            or (isinstance(options, Mapping) and any(options.get(k) for k in _SECRET_OPTIONS))
            or any(isinstance(url, str) and _url_password(url) is not None for url in urls))


def find_config(start: Path | None = None, *, env: Mapping[str, str] | None = None) -> Path | None:
    """``$RUNSTREAM_CONFIG`` if set, else the nearest ``runstream.json`` from ``start`` (cwd) upward, else None."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG]).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{ENV_CONFIG}={path} is not a file")
        return path
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None
