"""Workspace settings: one frozen object, built once from arguments, environment and ``runstream.json``.

Precedence, highest first: explicit ``Workspace(...)`` arguments, the
environment (``RUNSTREAM_KAFKA``, ``RUNSTREAM_CLICKHOUSE``, ``RUNSTREAM_HOME``,
``RUNSTREAM_TOPIC``), the config file (``Workspace.from_config``), the
defaults below. Nothing configured means the embedded default: events go to
the spool under ``$RUNSTREAM_HOME/spool`` and no server is needed.

Everything past :meth:`WorkspaceSettings.resolve` receives the built object and
never reads the environment itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping

from schemas.limits import RunLimits

from .errors import ConfigurationError

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_HOME",
    "DEFAULT_TOPIC",
    "ENV_CLICKHOUSE",
    "ENV_CONFIG",
    "ENV_HOME",
    "ENV_KAFKA",
    "ENV_TOPIC",
    "WorkspaceSettings",
    "find_config",
]

DEFAULT_TOPIC = "runstream.events"
DEFAULT_HOME = ".runstream"
CONFIG_FILE_NAME = "runstream.json"

ENV_KAFKA = "RUNSTREAM_KAFKA"
ENV_CLICKHOUSE = "RUNSTREAM_CLICKHOUSE"
ENV_HOME = "RUNSTREAM_HOME"
ENV_TOPIC = "RUNSTREAM_TOPIC"
ENV_CONFIG = "RUNSTREAM_CONFIG"

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"[^\s,:/]+:\d{1,5}")
_ENV_FIELDS = {"kafka": ENV_KAFKA, "clickhouse": ENV_CLICKHOUSE, "home": ENV_HOME, "topic": ENV_TOPIC}


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkspaceSettings:
    """Where events go and how the emitter behaves. Build with :meth:`resolve` (or directly, in tests)."""

    kafka: str | None = None
    """Bootstrap servers, ``host:port[,host:port...]``; None = embedded (spool only)."""
    clickhouse: str | None = None
    """``clickhouse://user:pass@host:9000/db`` for reading back; None = chDB under ``home``."""
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).absolute())
    """Local data: ``spool/`` (embedded event log), ``outbox/`` (Kafka outage buffer)."""
    topic: str = DEFAULT_TOPIC
    topic_partitions: int = 8
    """Partitions of the topic when the SDK has to create it (broker auto-creation is never relied on)."""
    topic_replication_factor: int = -1
    """-1 = the broker's ``default.replication.factor``."""
    limits: RunLimits = field(default_factory=RunLimits)
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
    kafka_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra kafka-python client settings (TLS/SASL: ``security_protocol``, ``ssl_cafile``, ``sasl_mechanism``...).

    Keys the SDK manages itself (acks, idempotence, serializers...) are refused.
    """

    def __post_init__(self) -> None:
        if self.kafka is not None:
            servers = [s.strip() for s in self.kafka.split(",")]
            if not servers or not all(_HOST_PORT.fullmatch(s) for s in servers):
                raise ConfigurationError(f"kafka must be host:port[,host:port...], got {self.kafka!r}")
        if self.clickhouse is not None and not self.clickhouse.startswith("clickhouse://"):
            raise ConfigurationError(f"clickhouse must be a clickhouse://user:pass@host:port/db URL, got {self.clickhouse!r}")
        if not isinstance(self.home, Path):
            raise ConfigurationError(f"home must be a Path, got {self.home!r}")
        if not _TOPIC.fullmatch(self.topic):
            raise ConfigurationError(f"topic must be 1-249 of [A-Za-z0-9._-], got {self.topic!r}")
        if not isinstance(self.limits, RunLimits):
            raise ConfigurationError("limits must be a schemas.RunLimits")
        for name in ("topic_partitions", "linger_ms", "batch_points", "max_buffer_bytes", "file_chunk_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        if self.topic_replication_factor != -1 and self.topic_replication_factor < 1:
            raise ConfigurationError("topic_replication_factor must be -1 (broker default) or >= 1")
        for name in ("heartbeat_interval_s", "flush_timeout_s", "exit_timeout_s", "stall_timeout_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.on_buffer_full not in ("block", "raise"):
            raise ConfigurationError(f"on_buffer_full must be 'block' or 'raise', got {self.on_buffer_full!r}")
        # A message must fit Kafka's default 1 MiB limit with its envelope.
        if self.file_chunk_bytes > 900 * 1024:
            raise ConfigurationError("file_chunk_bytes must be at most 900 KiB (Kafka's message limit is 1 MiB)")
        if self.batch_points > 50_000:
            raise ConfigurationError("batch_points must be at most 50,000 (one batch is one Kafka message)")
        if self.max_buffer_bytes < 4 * self.batch_points * 32:
            raise ConfigurationError("max_buffer_bytes must hold at least four full batches (batch_points * 128 bytes)")
        clash = sorted(set(self.kafka_options) & _MANAGED_KAFKA_OPTIONS)
        if clash:
            raise ConfigurationError(f"kafka_options may not set {', '.join(clash)}: the SDK manages them")

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: events go to the local spool."""
        return self.kafka is None

    @property
    def spool_dir(self) -> Path:
        """The embedded event log: what ``runstream ingest`` reads when there is no broker."""
        return self.home / "spool"

    @property
    def outbox_dir(self) -> Path:
        """Kafka mode: batches the broker could not take yet, replayed when it answers."""
        return self.home / "outbox"

    @classmethod
    def resolve(
        cls,
        explicit: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
        config_dir: Path | None = None,
    ) -> WorkspaceSettings:
        """Build settings from explicit values, the environment and a parsed config file, in that precedence.

        ``explicit`` values of None count as "not given". A relative ``home``
        from the config file is relative to the file's folder; elsewhere, to
        the working directory.
        """
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for source_name, source in (("runstream.json", config or {}), ("Workspace()", explicit or {})):
            unknown = sorted(set(source) - known)
            if unknown:
                raise ConfigurationError(
                    f"{source_name}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
        if config:
            values.update(config)
            if "home" in values and values["home"] is not None:
                home = Path(str(values["home"])).expanduser()
                values["home"] = home if home.is_absolute() or config_dir is None else config_dir / home
            if isinstance(values.get("limits"), Mapping):
                try:
                    values["limits"] = RunLimits.from_mapping(values["limits"])
                except ValueError as exc:
                    raise ConfigurationError(f"runstream.json: {exc}") from exc
        for name, var in _ENV_FIELDS.items():
            if env.get(var):
                values[name] = env[var]
        for name, value in (explicit or {}).items():
            if value is not None:
                values[name] = value
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser().absolute()
        for name in list(values):
            default = next(f for f in fields(cls) if f.name == name).default
            if isinstance(default, float) and isinstance(values[name], int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        try:
            return cls(**values)
        except ConfigurationError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, explicit: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> WorkspaceSettings:
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
        return cls.resolve(explicit, env=env, config=data, config_dir=path.resolve().parent)

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection settings shared by the producer and the admin client (TLS/SASL go here)."""
        assert self.kafka is not None
        options: dict[str, Any] = {"bootstrap_servers": [s.strip() for s in self.kafka.split(",")]}
        options.update(self.kafka_options)
        return options


_MANAGED_KAFKA_OPTIONS = frozenset(
    {
        "bootstrap_servers", "acks", "enable_idempotence", "key_serializer", "value_serializer",
        "compression_type", "allow_auto_create_topics", "transactional_id", "retries",
    }
)


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

