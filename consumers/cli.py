"""The ``runstream`` command: argparse subcommands, each registered by its owner.

Adding a subcommand is one line in :data:`COMMANDS`: ``"package.module:function"``,
where ``function(subparsers)`` adds a parser and sets ``handler`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code) with
``parser.set_defaults(handler=...)``. Modules are imported only when the
command line is parsed, so a heavy one does not slow the others down.

This is an entry point: it alone configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "consumers.cli:register_ingest",  # runstream ingest
    "consumers.cli:register_spool",  # runstream spool status|replay
    "consumers.exporter:register",  # runstream exporter
    "consumers.jobs_cli:register",  # runstream submit, logs
)
"""Registration hooks, ``module:function``; one line per subcommand group."""

log = logging.getLogger("runstream")


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- runstream ingest ------------------------------------------------------------------------------


def _limit_pair(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=N, got {text!r}")
    try:
        return name.strip().replace("-", "_"), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None


def register_ingest(subparsers: Any) -> None:
    """``runstream ingest``."""
    from schemas.limits import RunLimits

    from .config import DEFAULT_DLQ_TOPIC, DEFAULT_GROUP, DEFAULT_METRICS_PORT

    p = subparsers.add_parser(
        "ingest",
        help="move logged events into ClickHouse (Kafka or the local spool -> ClickHouse or chDB)",
        description=(
            "Consume runstream events and write them to ClickHouse exactly once. Source: Kafka when --kafka or "
            "RUNSTREAM_KAFKA is set, else the local spool under the home. Sink: the ClickHouse server of "
            "--clickhouse / RUNSTREAM_CLICKHOUSE, else chDB under the home. SIGTERM or Ctrl-C flushes, commits "
            "and exits 0."
        ),
    )
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    p.add_argument("--clickhouse", metavar="URL",
                   help="clickhouse://user:pass@host:9000/db (default: $RUNSTREAM_CLICKHOUSE)")
    p.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    p.add_argument("--topic", help="events topic (default: $RUNSTREAM_TOPIC or runstream.events)")
    p.add_argument("--group", help=f"consumer group (default: {DEFAULT_GROUP})")
    p.add_argument("--dlq-topic", help=f"dead-letter topic (default: {DEFAULT_DLQ_TOPIC})")
    p.add_argument("--partitions", type=int, dest="topic_partitions",
                   help="partitions of topics created when missing (default: 8)")
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                   help=f"Prometheus metrics port, 0 to disable (default: {DEFAULT_METRICS_PORT})")
    p.add_argument("--flush-rows", type=int, help="flush after this many buffered rows (default: 100000)")
    p.add_argument("--flush-interval", type=float, dest="flush_interval_s",
                   help="flush buffered rows at least this often, seconds (default: 0.5)")
    p.add_argument("--heartbeat-lost", type=float, dest="heartbeat_lost_s",
                   help="seconds without a heartbeat before a run stops counting as active (default: 300)")
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
    p.set_defaults(handler=_ingest)


def _build_ingest_config(args: argparse.Namespace, env: dict[str, str]) -> Any:
    from schemas.limits import RunLimits

    from .config import IngestConfig, resolve_home
    from .errors import ConfigError

    home = resolve_home(args.home, env)
    limits_file = args.limits if args.limits else (home / "limits.json" if (home / "limits.json").exists() else None)
    try:
        overrides: dict[str, Any] = RunLimits.from_file(limits_file).to_dict() if limits_file else {}
        overrides.update(dict(args.limit))
        limits = RunLimits.from_mapping(overrides)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"limits: {exc}") from exc
    config = IngestConfig.from_env(
        env, kafka=args.kafka, clickhouse=args.clickhouse, home=args.home, topic=args.topic, group=args.group,
        dlq_topic=args.dlq_topic, topic_partitions=args.topic_partitions, flush_rows=args.flush_rows,
        flush_interval_s=args.flush_interval_s, heartbeat_lost_s=args.heartbeat_lost_s, limits=limits,
    )
    if args.metrics_port != config.metrics_port:
        from dataclasses import replace

        config = replace(config, metrics_port=args.metrics_port or None)
    return config


def _ingest(args: argparse.Namespace) -> int:
    from schemas.errors import PipelineError

    from .service import IngestService

    try:
        config = _build_ingest_config(args, dict(os.environ))
    except PipelineError as exc:
        _print(f"runstream ingest: {exc}")
        return 2
    service = IngestService(config, progress=lambda m: log.info("%s", m))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: flushing, committing and stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from .service import Interrupted

    try:
        service.start()
        service.run(until_idle_s=args.idle if args.once else None)
    except Interrupted:
        return 0
    except PipelineError as exc:
        _print(f"runstream ingest: {exc}")
        return 1
    finally:
        service.close()
    return 0


# -- runstream spool -------------------------------------------------------------------------------


def register_spool(subparsers: Any) -> None:
    """``runstream spool status|replay`` (the tools live in ``producers.spool_tools``)."""
    p = subparsers.add_parser("spool", help="inspect the local spool, or replay it into Kafka")
    sub = p.add_subparsers(dest="spool_command", required=True, metavar="{status,replay}")
    status = sub.add_parser("status", help="segments and messages waiting in the outbox, spool and rejected folders")
    status.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    status.set_defaults(handler=_spool_status)
    replay = sub.add_parser("replay", help="send the outbox of processes that died during a Kafka outage to Kafka")
    replay.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    replay.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    replay.add_argument("--topic", help="events topic (default: $RUNSTREAM_TOPIC or runstream.events)")
    replay.set_defaults(handler=_spool_replay)


def _spool_status(args: argparse.Namespace) -> int:
    from producers import spool_tools

    from .config import resolve_home

    home = resolve_home(args.home, os.environ)
    print(spool_tools.format_status(spool_tools.spool_status(home)))
    return 0


def _spool_replay(args: argparse.Namespace) -> int:
    from producers import spool_tools
    from schemas.errors import PipelineError

    from .config import DEFAULT_TOPIC, resolve_home

    home = resolve_home(args.home, os.environ)
    kafka = args.kafka or os.environ.get("RUNSTREAM_KAFKA")
    if not kafka:
        _print("runstream spool replay: no Kafka to replay into: pass --kafka or set RUNSTREAM_KAFKA")
        return 2
    topic = args.topic or os.environ.get("RUNSTREAM_TOPIC") or DEFAULT_TOPIC

    def progress(p: Any) -> None:
        if p.done:
            _print(f"  {p.segment.name}: {p.segment_records} message(s) sent"
                   + (f", unreadable tail ({p.corrupt})" if p.corrupt else ""))

    _print(f"replaying abandoned segments of {home / 'outbox'} into {topic} on {kafka}")
    try:
        result = spool_tools.replay(home, kafka, topic, progress=progress)
    except PipelineError as exc:
        _print(f"runstream spool replay: {exc}")
        return 1
    _print(f"done: {result.records} message(s) from {result.segments} segment(s); "
           f"{result.skipped_live} segment(s) of running writers left alone"
           + (f"; {result.rejected} refused by the broker (kept in outbox/rejected)" if result.rejected else "")
           + (f"; {len(result.corrupt)} segment(s) had an unreadable tail" if result.corrupt else ""))
    return 0 if not result.corrupt else 1


# -- main ------------------------------------------------------------------------------------------


def _load(hook: str) -> Callable[[Any], None]:
    module, _, function = hook.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="runstream", description="runstream: run logging for ML sweeps")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for hook in commands:
        _load(hook)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runstream`` console script."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose >= 2 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:
        logging.getLogger("kafka").setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
