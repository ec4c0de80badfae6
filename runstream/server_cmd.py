"""``runstream server``: MLflow's tracking server and the web UI, over runstream.

    runstream server                          # embedded: owns ./.runstream, ingests its spool, serves on :5000
    runstream server --port 5001 --kafka 127.0.0.1:9092 --clickhouse clickhouse://127.0.0.1:9000/runstream

Embedded (no Kafka or no ClickHouse configured): the server is the home's
owner, like ``runstream ingest``: it ingests the spool into chDB in a thread,
answers other readers on the home's query socket, and reads chDB in-process
(:mod:`runstream.server.reads`; when a ``runstream ingest`` owns the home
already, the server reads through its socket). Kafka mode: MLflow writes go to
Kafka through the SDK's emitter, reads come from ClickHouse, and ``runstream
ingest`` workers run separately. SIGTERM or Ctrl-C: requests in flight finish,
everything written is delivered, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from producers import Workspace
from schemas.errors import ConfigurationError, PipelineError
from schemas.limits import RunLimits
from schemas.secrets import has_password, redact_logs
from schemas.settings import IngestSettings, WorkspaceSettings

from .server.app import create_app, serve
from .server.reads import ServerReads
from .server.runstream_backend import RunstreamBackend
from .server.ui_api import UiSettings, ui_routes

__all__ = ["register"]

log = logging.getLogger("runstream")


def register(subparsers: Any) -> None:
    """Add ``runstream server``."""
    p = subparsers.add_parser(
        "server",
        help="serve MLflow's tracking REST API and the web UI over runstream",
        description=("An MLflow tracking server on runstream (point MLFLOW_TRACKING_URI, or Lightning's "
                     "MLFlowLogger, at it) and runstream's web UI at /. With nothing configured it owns the home "
                     "and ingests its spool; with Kafka and ClickHouse it writes to Kafka and reads ClickHouse "
                     "(run `runstream ingest` too). Every page, script and style is served locally."),
    )
    p.add_argument("--host", help="address to listen on (default: the host of $RUNSTREAM_SERVER, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: the port of $RUNSTREAM_SERVER, 5000)")
    p.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    p.add_argument("--clickhouse", metavar="URL", help="ClickHouse URL for reads, the reader user's "
                   "(default: $RUNSTREAM_CLICKHOUSE; its password from $RUNSTREAM_CLICKHOUSE_PASSWORD[_FILE])")
    p.add_argument("--topic", help="events topic (default: $RUNSTREAM_TOPIC or runstream.events)")
    p.set_defaults(handler=_server)


def _limits(home: Path) -> RunLimits:
    path = home / "limits.json"
    try:
        return RunLimits.from_file(path) if path.exists() else RunLimits()
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"limits: {exc}") from exc


class _Server:
    """What ``runstream server`` owns: where it reads (and ingests), the SDK it writes through, the backend."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.clickhouse and has_password(args.clickhouse):
            raise ConfigurationError("--clickhouse must not hold a password (anyone on this machine can read a "
                                     "command line): set RUNSTREAM_CLICKHOUSE_PASSWORD or ..._PASSWORD_FILE")
        explicit = {"home": args.home, "kafka": args.kafka, "clickhouse": args.clickhouse, "topic": args.topic}
        limits = _limits(WorkspaceSettings.resolve(explicit).home)
        self.settings = WorkspaceSettings.resolve({**explicit, "limits": limits})
        s = self.settings
        self.reads = ServerReads(replace(IngestSettings.resolve(explicit), limits=limits),
                                 progress=lambda m: log.info("%s", m))
        # The SDK's settings whole: in Kafka mode MLflow writes go out as the producer principal (TLS/SASL).
        workspace = Workspace(settings=replace(s, install_signal_handlers=False))
        self.backend = RunstreamBackend(workspace, self.reads.connect, state_dir=s.home / "mlflow",
                                        settle=lambda: self.reads.settle(s.visible_timeout_s))

    def startup(self) -> None:
        self.reads.start()
        self.backend.start()

    def shutdown(self) -> None:
        self.backend.close()  # delivers what MLflow clients sent (into the spool, or Kafka)
        self.reads.stop()


def _server(args: argparse.Namespace) -> int:
    try:
        server = _Server(args)
    except PipelineError as exc:
        print(f"runstream server: {exc}", file=sys.stderr)
        return 2
    redact_logs(server.settings.secret_values())  # no password reaches a log line, even a library's
    where = urlsplit(server.settings.server)
    host = args.host or where.hostname or "127.0.0.1"
    port = args.port or where.port or 5000
    if not 0 < port < 65536:
        print(f"runstream server: port out of range: {port}", file=sys.stderr)
        return 2
    ui = ui_routes(server.reads.connect, UiSettings(lost_after_s=server.settings.heartbeat_lost_s))
    app = create_app(server.backend, ui_routes=ui, startup=server.startup, shutdown=server.shutdown)
    source = server.settings.clickhouse or f"{server.settings.home} (embedded)"
    print(f"runstream server: runs from {source}; open http://{host}:{port}/ (also the MLflow tracking URI)",
          file=sys.stderr, flush=True)
    serve(app, host=host, port=port, log_level="warning" if os.environ.get("RUNSTREAM_QUIET") else "info")
    return 0
