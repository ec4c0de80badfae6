"""``runstream exporter``: pipeline health for Prometheus, polled apart from the workers.

Wires :mod:`consumers.exporter` (the collector and the poller) to the real
clients (:mod:`consumers.exporter_sources`) and an HTTP endpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from consumers.exporter import PipelineCollector, Poller
from consumers.exporter_sources import ClickHouseSystemStats, KafkaAdminOffsets
from schemas.errors import ConfigurationError
from schemas.secrets import has_password, redact_logs
from schemas.settings import ENV, LOCAL_CLICKHOUSE, LOCAL_KAFKA, ExporterSettings

__all__ = ["register", "run", "build_settings", "start_exporter", "RunningExporter"]

_log = logging.getLogger("runstream.exporter")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``runstream exporter``; its handler is :func:`run`."""
    parser = subparsers.add_parser(
        "exporter",
        help="serve Kafka lag, DLQ size and ClickHouse table health to Prometheus",
        description=(
            "Serve pipeline health on /metrics, from Kafka's admin API and ClickHouse's system "
            "tables, apart from the ingest workers."
        ),
    )
    default = ExporterSettings(kafka=LOCAL_KAFKA, clickhouse=LOCAL_CLICKHOUSE)
    parser.add_argument("--port", type=int, default=default.port, help="HTTP port of /metrics (default %(default)s)")
    parser.add_argument("--host", default=default.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--kafka", help=f"Kafka bootstrap servers (default ${ENV['kafka']} or {LOCAL_KAFKA})")
    parser.add_argument("--clickhouse", help="ClickHouse URL, clickhouse://user:pass@host:9000/db "
                                             f"(default ${ENV['clickhouse']} or {LOCAL_CLICKHOUSE})")
    parser.add_argument("--group", default=default.group, help="ingest consumer group (default %(default)s)")
    parser.add_argument("--topic", help=f"events topic (default ${ENV['topic']} or {default.topic})")
    parser.add_argument("--dlq-topic", default=default.dlq_topic, help="dead-letter topic (default %(default)s)")
    parser.add_argument("--interval", type=float, default=default.interval_s,
                        help="seconds between polls (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=default.timeout_s,
                        help="seconds one source may take before it counts as down (default %(default)s)")
    parser.set_defaults(handler=run)
    return parser


def build_settings(args: argparse.Namespace, env: Mapping[str, str]) -> ExporterSettings:
    """Flags, then the environment, then the local stack's addresses (the exporter needs both systems)."""
    if args.clickhouse and has_password(args.clickhouse):
        raise ConfigurationError("--clickhouse must not hold a password (anyone on this machine can read a "
                                 "command line): set RUNSTREAM_CLICKHOUSE_PASSWORD or RUNSTREAM_CLICKHOUSE_PASSWORD_FILE")
    return ExporterSettings.resolve(
        {"port": args.port, "host": args.host, "kafka": args.kafka or env.get(ENV["kafka"]) or LOCAL_KAFKA,
         "clickhouse": args.clickhouse or env.get(ENV["clickhouse"]) or LOCAL_CLICKHOUSE, "group": args.group,
         "topic": args.topic, "dlq_topic": args.dlq_topic, "interval_s": args.interval, "timeout_s": args.timeout},
        env=env)


@dataclass
class RunningExporter:
    """A started exporter: its port and poller; stop it with ``close``."""

    port: int
    poller: Poller
    close: Callable[[], None] = field(repr=False)


def start_exporter(settings: ExporterSettings, registry: CollectorRegistry) -> RunningExporter:
    """Serve ``registry`` on ``settings.host:port`` and poll Kafka and ClickHouse every ``interval_s``."""
    assert settings.kafka is not None and settings.clickhouse is not None  # ExporterSettings requires both
    collector = PipelineCollector(registry)
    # Client timeouts a bit under the poll's bound, so a dead source reports its own
    # error ("connection refused") rather than the poller's generic timeout.
    client_timeout_s = max(0.1, settings.timeout_s * 0.8)
    poller = Poller(
        collector,
        settings,
        kafka=KafkaAdminOffsets(settings.kafka_client_options(), timeout_s=client_timeout_s),
        clickhouse=ClickHouseSystemStats(settings.clickhouse, timeout_s=client_timeout_s,
                                         password=settings.clickhouse_password),
    )
    server, _thread = start_http_server(settings.port, addr=settings.host, registry=registry)
    poller.start()

    def close() -> None:
        server.shutdown()
        server.server_close()
        poller.stop(timeout=settings.timeout_s + 1)

    return RunningExporter(port=server.server_port, poller=poller, close=close)


def run(args: argparse.Namespace) -> int:
    """Run the exporter until SIGTERM or SIGINT (the CLI configured logging)."""
    try:
        settings = build_settings(args, os.environ)
    except ConfigurationError as exc:
        print(f"runstream exporter: {exc}", file=sys.stderr, flush=True)
        return 2
    redact_logs(settings.secret_values())
    if getattr(args, "verbose", 0) < 2:
        # The exporter logs each source going down and coming back, once; the client
        # libraries would log every failed connection attempt of every poll.
        for name in ("kafka", "clickhouse_driver"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    running = start_exporter(settings, registry)
    _log.info("exporter serving on %s:%d (group %s, topic %s, every %g s)",
              settings.host, running.port, settings.group, settings.topic, settings.interval_s)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        running.close()
    _log.info("exporter stopped")
    return 0
