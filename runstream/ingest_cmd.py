"""``runstream ingest``: move logged events into ClickHouse (Kafka or the spool -> ClickHouse or chDB).

    runstream ingest                                    # embedded: the spool under ./.runstream -> chDB
    runstream ingest --kafka 127.0.0.1:9092 --clickhouse clickhouse://127.0.0.1:9000/runstream

With ``--on-demand`` it is the home's owner that a reader started
(:mod:`producers.reading`): it exits once nobody asked anything for
``--idle-exit`` seconds, soon after ``--parent-pid`` is gone, or when a
``runstream ingest`` or ``runstream server`` asks for the home; if the home
already has an owner it exits 0 at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from consumers.service import ON_DEMAND_ROLE, HomeBusy, IngestService, Interrupted
from schemas.errors import ConfigurationError, PipelineError
from schemas.limits import RunLimits
from schemas.secrets import has_password, redact_logs
from schemas.settings import DEFAULT_DLQ_TOPIC, DEFAULT_GROUP, IngestSettings

__all__ = ["register", "build_settings"]

log = logging.getLogger("runstream")

_PARENT_GONE_GRACE_S = 2.0
"""An on-demand owner lingers this long after its starter exits (a reader that follows may use it)."""


def _limit_pair(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=N, got {text!r}")
    try:
        return name.strip().replace("-", "_"), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None


def register(subparsers: Any) -> None:
    """Add ``runstream ingest``."""
    defaults = IngestSettings()
    p = subparsers.add_parser(
        "ingest",
        help="move logged events into ClickHouse (Kafka or the local spool -> ClickHouse or chDB)",
        description=(
            "Consume runstream events and write them to ClickHouse exactly once. Source: Kafka when --kafka or "
            "RUNSTREAM_KAFKA is set, else the local spool under the home. Sink: the ClickHouse server of "
            "--clickhouse-writer / RUNSTREAM_CLICKHOUSE_WRITER (the writer user), else --clickhouse / "
            "RUNSTREAM_CLICKHOUSE, else chDB under the home. Passwords come from RUNSTREAM_*_PASSWORD or "
            "RUNSTREAM_*_PASSWORD_FILE, never the command line. SIGTERM or Ctrl-C flushes, commits "
            "and exits 0."
        ),
    )
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    p.add_argument("--clickhouse", metavar="URL",
                   help="clickhouse://user@host:9000/db (default: $RUNSTREAM_CLICKHOUSE)")
    p.add_argument("--clickhouse-writer", metavar="URL",
                   help="the URL inserts and migrations use, when another user than --clickhouse's "
                        "(default: $RUNSTREAM_CLICKHOUSE_WRITER)")
    p.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    p.add_argument("--topic", help="events topic (default: $RUNSTREAM_TOPIC or runstream.events)")
    p.add_argument("--group", help=f"consumer group (default: {DEFAULT_GROUP})")
    p.add_argument("--dlq-topic", help=f"dead-letter topic (default: {DEFAULT_DLQ_TOPIC})")
    p.add_argument("--partitions", type=int, dest="topic_partitions",
                   help=f"partitions of topics created when missing (default: {defaults.topic_partitions})")
    p.add_argument("--metrics-port", type=int, default=defaults.metrics_port,
                   help=f"Prometheus metrics port, 0 to disable (default: {defaults.metrics_port})")
    p.add_argument("--flush-rows", type=int,
                   help=f"flush after this many buffered rows (default: {defaults.flush_rows})")
    p.add_argument("--flush-interval", type=float, dest="flush_interval_s",
                   help=f"flush buffered rows at least this often, seconds (default: {defaults.flush_interval_s:g})")
    p.add_argument("--heartbeat-lost", type=float, dest="heartbeat_lost_s",
                   help="seconds without a heartbeat before a run stops counting as active "
                        f"(default: {defaults.heartbeat_lost_s:g})")
    p.add_argument("--once", action="store_true",
                   help="exit 0 once everything available was ingested (nothing new for --idle seconds)")
    p.add_argument("--idle", type=float, default=2.0, metavar="SECONDS",
                   help="with --once: how long the source must stay empty (default: 2)")
    p.add_argument("--limits", type=Path, metavar="FILE",
                   help="JSON object of per-run limit overrides, e.g. {\"max_metric_names\": 100} "
                        "(default: <home>/limits.json when present)")
    p.add_argument("--limit", type=_limit_pair, action="append", default=[], metavar="NAME=N",
                   help=f"one limit override (repeatable; wins over --limits); names: "
                        f"{', '.join(RunLimits().to_dict())}")
    owner = p.add_argument_group("started by a reader (see producers.reading)")
    owner.add_argument("--on-demand", action="store_true", help=argparse.SUPPRESS)
    owner.add_argument("--idle-exit", type=float, default=30.0, metavar="SECONDS", help=argparse.SUPPRESS)
    owner.add_argument("--parent-pid", type=int, metavar="PID", help=argparse.SUPPRESS)
    p.set_defaults(handler=_ingest)


def build_settings(args: argparse.Namespace, env: dict[str, str]) -> IngestSettings:
    """The worker's settings from the flags, the environment and the defaults."""
    for flag, url, var in (("--clickhouse", args.clickhouse, "RUNSTREAM_CLICKHOUSE_PASSWORD"),
                           ("--clickhouse-writer", args.clickhouse_writer, "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD")):
        if url and has_password(url):
            raise ConfigurationError(f"{flag} must not hold a password (anyone on this machine can read a "
                                     f"command line): set {var} or {var}_FILE")
    values: dict[str, Any] = {
        "kafka": args.kafka, "clickhouse": args.clickhouse, "clickhouse_writer": args.clickhouse_writer, "home": args.home, "topic": args.topic,
        "group": args.group, "dlq_topic": args.dlq_topic, "topic_partitions": args.topic_partitions,
        "flush_rows": args.flush_rows, "flush_interval_s": args.flush_interval_s,
        "heartbeat_lost_s": args.heartbeat_lost_s,
    }
    settings = IngestSettings.resolve(values, env=env)
    home = settings.home
    limits_file = args.limits if args.limits else (home / "limits.json" if (home / "limits.json").exists() else None)
    try:
        overrides: dict[str, Any] = RunLimits.from_file(limits_file).to_dict() if limits_file else {}
        overrides.update(dict(args.limit))
        limits = RunLimits.from_mapping(overrides)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"limits: {exc}") from exc
    metrics_port = None if args.on_demand else args.metrics_port or None  # 0: no endpoint
    return replace(settings, limits=limits, metrics_port=metrics_port)


def _on_demand_stop(service: IngestService, *, idle_exit_s: float, parent_pid: int | None) -> Callable[[], bool]:
    """When a reader-started owner should leave: idle too long, or its starter gone (and briefly idle)."""

    def should_stop() -> bool:
        idle = service.idle_s()
        if idle >= idle_exit_s:
            log.info("no reads for %.0fs: stepping down", idle)
            return True
        if parent_pid is not None and idle >= _PARENT_GONE_GRACE_S and not _alive(parent_pid):
            log.info("the process that started this owner (pid %d) is gone: stepping down", parent_pid)
            return True
        return False

    return should_stop


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _say(message: str) -> None:
    print(f"runstream ingest: {message}", file=sys.stderr, flush=True)


def _ingest(args: argparse.Namespace) -> int:
    try:
        settings = build_settings(args, dict(os.environ))
    except PipelineError as exc:
        _say(str(exc))
        return 2
    redact_logs(settings.secret_values())
    role = ON_DEMAND_ROLE if args.on_demand else "ingest"
    service = IngestService(settings, progress=lambda m: log.info("%s", m), role=role)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: flushing, committing and stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    should_stop = (_on_demand_stop(service, idle_exit_s=args.idle_exit, parent_pid=args.parent_pid)
                   if args.on_demand else None)
    try:
        service.start()
        service.run(until_idle_s=args.idle if args.once else None, should_stop=should_stop)
    except Interrupted:
        return 0
    except HomeBusy as exc:
        if args.on_demand:
            return 0  # another owner answers the readers: nothing to do
        _say(str(exc))
        return 1
    except PipelineError as exc:
        _say(str(exc))
        return 1
    finally:
        service.close()
    return 0
