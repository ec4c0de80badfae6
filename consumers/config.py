"""The ingest worker's configuration: one frozen object, built once by the CLI.

``IngestConfig.from_env`` fills what flags left out from ``RUNSTREAM_*``
environment variables and the defaults below; everything else receives the
built object and never reads the environment itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from schemas.limits import RunLimits

from .errors import ConfigError

__all__ = [
    "DEFAULT_TOPIC",
    "DEFAULT_GROUP",
    "DEFAULT_DLQ_TOPIC",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_HOME",
    "IngestConfig",
    "resolve_home",
]

DEFAULT_TOPIC = "runstream.events"
DEFAULT_GROUP = "runstream-ingest"
DEFAULT_DLQ_TOPIC = "runstream.events.dlq"
DEFAULT_METRICS_PORT = 9464
DEFAULT_HOME = ".runstream"
"""Relative to the working directory, like ``mlruns/``: a sweep's data sits beside its code."""

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def resolve_home(home: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The runstream home: the argument, else ``$RUNSTREAM_HOME``, else ``./.runstream`` (made absolute)."""
    chosen = home if home is not None else env.get("RUNSTREAM_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestConfig:
    """Everything ``runstream ingest`` needs.

    ``kafka`` None means "read the local spool" (embedded default);
    ``clickhouse`` None means "write to chDB under ``home``".
    """

    kafka: str | None = None
    clickhouse: str | None = None
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).absolute())
    topic: str = DEFAULT_TOPIC
    group: str = DEFAULT_GROUP
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    topic_partitions: int = 8
    """Partitions of the topics ingest creates when they are missing (auto-creation is off)."""
    metrics_port: int | None = DEFAULT_METRICS_PORT
    """None disables the HTTP endpoint (tests, in-process ingest by readers)."""
    limits: RunLimits = field(default_factory=RunLimits)
    flush_rows: int = 100_000
    """Flush when this many rows (all tables) are buffered..."""
    flush_bytes: int = 32 * 1024 * 1024
    """...or when the messages behind them hold this many bytes (file chunks are up to 512 KiB each)..."""
    flush_interval_s: float = 0.5
    """...or when the oldest buffered row is this old."""
    poll_max_records: int = 16
    """Messages taken per poll, all decoded before the next flush check. A scalar message holds up to
    16,384 points, so this bounds one poll at about 0.26 M points. At 500, ingest's RSS reached 700 MB
    in the end-to-end benchmark; at 16 it stays near 200 MB at the same throughput."""
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    """Sink retries back off exponentially from ``retry_initial_s`` up to this cap, for ever."""
    shutdown_timeout_s: float = 8.0
    """SIGTERM: the final flush may take this long; then the worker exits without committing (data is re-read)."""
    rebalance_flush_timeout_s: float = 20.0
    session_timeout_ms: int = 10_000
    """Kafka group session timeout: how soon a killed worker's partitions move to another."""
    heartbeat_lost_s: float = 300.0
    """A run with no heartbeat for this long is no longer counted as active (readers show it Failed)."""
    max_cached_runs: int = 10_000
    """Per-run limit counters kept in memory; the least recently used are dropped after a flush."""
    serve_queries: bool = True
    """Embedded mode: answer readers' queries on a local socket while this process owns chDB."""

    def __post_init__(self) -> None:
        if self.kafka is not None and not self.kafka.strip():
            raise ConfigError("kafka bootstrap must not be empty (leave it unset for the embedded spool)")
        if self.clickhouse is not None and not self.clickhouse.startswith(("clickhouse://", "clickhouses://")):
            raise ConfigError(f"clickhouse URL must look like clickhouse://host:9000/db, got {self.clickhouse!r}")
        for name in ("topic", "dlq_topic", "group"):
            if not _TOPIC.fullmatch(getattr(self, name)):
                raise ConfigError(f"{name} must be 1-249 letters, digits, '.', '_' or '-'")
        if self.topic == self.dlq_topic:
            raise ConfigError("the dead-letter topic must differ from the events topic")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port out of range: {self.metrics_port}")
        for name in ("flush_rows", "flush_bytes", "poll_max_records", "max_cached_runs", "session_timeout_ms", "topic_partitions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        for name in ("flush_interval_s", "retry_initial_s", "shutdown_timeout_s", "rebalance_flush_timeout_s",
                     "heartbeat_lost_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0")
        if self.retry_max_s < self.retry_initial_s:
            raise ConfigError("retry_max_s must be >= retry_initial_s")
        if not isinstance(self.limits, RunLimits):
            raise ConfigError("limits must be a schemas.RunLimits")

    @property
    def embedded_source(self) -> bool:
        """True when events come from the local spool rather than Kafka."""
        return self.kafka is None

    @property
    def embedded_sink(self) -> bool:
        """True when rows go to chDB under ``home`` rather than a ClickHouse server."""
        return self.clickhouse is None

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def deadletter_dir(self) -> Path:
        return self.home / "deadletter"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> IngestConfig:
        """Build from a mapping; unknown keys are an error (a typo must not keep a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown ingest setting(s): {', '.join(unknown)}")
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> IngestConfig:
        """``overrides`` (flags; None = not given) win over ``RUNSTREAM_KAFKA``, ``RUNSTREAM_CLICKHOUSE``,
        ``RUNSTREAM_HOME``, ``RUNSTREAM_TOPIC``; the rest keeps its defaults."""
        given = {k: v for k, v in overrides.items() if v is not None}
        values: dict[str, Any] = {
            "kafka": env.get("RUNSTREAM_KAFKA") or None,
            "clickhouse": env.get("RUNSTREAM_CLICKHOUSE") or None,
            "topic": env.get("RUNSTREAM_TOPIC") or DEFAULT_TOPIC,
        }
        values.update(given)
        values["home"] = resolve_home(given.get("home"), env)
        return cls.from_mapping(values)
