"""``runstream server``: MLflow's tracking server (and the web UI) over runstream.

    runstream server                          # embedded: owns the home, ingests the spool, serves on :5000
    runstream server --port 5001 --kafka 127.0.0.1:9092 --clickhouse clickhouse://127.0.0.1:9000/runstream

Embedded (no Kafka or no ClickHouse configured): the server is the home's
owner, like ``runstream ingest``: it ingests the spool into chDB in a thread,
answers other readers on the home's query socket, and reads chDB in-process.
Kafka mode: MLflow writes go to Kafka through the SDK's emitter, reads come
from ClickHouse, and ``runstream ingest`` workers run separately. SIGTERM or
Ctrl-C: requests in flight finish, everything written is delivered, exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from consumers.service import IngestService
from producers import Workspace
from schemas.errors import ConfigurationError, PipelineError
from schemas.limits import RunLimits
from schemas.settings import IngestSettings, WorkspaceSettings
from store import ReadQueries, StoreQueries, server_reads

__all__ = ["register"]

log = logging.getLogger("runstream")

_KAFKA_SETTLE_S = 2.0
"""How long an unknown run id waits for ingest in Kafka mode before it is "not found" (p99 lag ~1.2 s)."""


def register(subparsers: Any) -> None:
    """Add ``runstream server``."""
    p = subparsers.add_parser(
        "server",
        help="serve MLflow's tracking REST API (and the web UI) over runstream",
        description=("An MLflow tracking server on runstream: point MLFLOW_TRACKING_URI (or Lightning's "
                     "MLFlowLogger) at it. With nothing configured it owns the home and ingests it; with Kafka "
                     "and ClickHouse it writes to Kafka and reads ClickHouse (run `runstream ingest` too)."),
    )
    p.add_argument("--host", help="address to listen on (default: the host of $RUNSTREAM_SERVER, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: the port of $RUNSTREAM_SERVER, 5000)")
    p.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    p.add_argument("--clickhouse", metavar="URL", help="ClickHouse URL for reads (default: $RUNSTREAM_CLICKHOUSE)")
    p.add_argument("--topic", help="events topic (default: $RUNSTREAM_TOPIC or runstream.events)")
    p.set_defaults(handler=_server)


def _limits(home: Path) -> RunLimits:
    path = home / "limits.json"
    try:
        return RunLimits.from_file(path) if path.exists() else RunLimits()
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"limits: {exc}") from exc


class _Server:
    """The pieces ``runstream server`` owns, started and stopped by the app's lifespan."""

    def __init__(self, args: argparse.Namespace) -> None:
        from runstream.server.runstream_backend import RunstreamBackend

        explicit = {"home": args.home, "kafka": args.kafka, "clickhouse": args.clickhouse, "topic": args.topic}
        base = WorkspaceSettings.resolve(explicit)
        limits = _limits(base.home)
        self.settings = WorkspaceSettings.resolve({**explicit, "limits": limits})
        s = self.settings
        self.owner: IngestService | None = None
        if s.kafka is None or s.clickhouse is None:
            ingest = IngestSettings.resolve(explicit)
            self.owner = IngestService(replace(ingest, limits=limits, metrics_port=None),
                                       progress=lambda m: log.info("%s", m), role="server")
        self._thread: threading.Thread | None = None
        workspace = Workspace(home=s.home, kafka=s.kafka, clickhouse=s.clickhouse, topic=s.topic, limits=limits,
                              install_signal_handlers=False)
        self.backend = RunstreamBackend(workspace, self._connect_factory(), state_dir=s.home / "mlflow",
                                        settle=self._settle)

    def _connect_factory(self) -> Any:
        if self.owner is None:
            assert self.settings.clickhouse is not None
            return server_reads(self.settings.clickhouse)
        owner = self.owner

        @contextlib.contextmanager
        def connect() -> Iterator[ReadQueries]:
            store = owner.store
            if store is None:
                raise ConfigurationError("the server's store is not open yet")
            yield StoreQueries(store)

        return connect

    def _settle(self) -> None:
        """Before answering "no such run": the spool ingested (embedded), or ingest's usual lag waited (Kafka)."""
        if self.owner is not None and self.owner.settings.embedded_source:
            self.owner.sync(self.settings.visible_timeout_s)
        else:
            time.sleep(_KAFKA_SETTLE_S)

    def startup(self) -> None:
        if self.owner is not None:
            owner = self.owner
            owner.start()
            self._thread = threading.Thread(target=owner.run, name="runstream-server-ingest", daemon=True)
            self._thread.start()
        self.backend.start()

    def shutdown(self) -> None:
        self.backend.close()  # delivers what MLflow clients sent (into the spool, or Kafka)
        if self.owner is not None:
            self.owner.stop()
            if self._thread is not None:
                self._thread.join(30)
            self.owner.close()


def _server(args: argparse.Namespace) -> int:
    from runstream.server.app import create_app, serve

    try:
        server = _Server(args)
    except PipelineError as exc:
        print(f"runstream server: {exc}", file=sys.stderr)
        return 2
    where = urlsplit(server.settings.server)
    host = args.host or where.hostname or "127.0.0.1"
    port = args.port or where.port or 5000
    app = create_app(server.backend, ui_routes=_ui_routes(server), startup=server.startup, shutdown=server.shutdown)
    log.info("runstream server on http://%s:%d (MLflow tracking URI), home %s", host, port, server.settings.home)
    serve(app, host=host, port=port, log_level="warning" if os.environ.get("RUNSTREAM_QUIET") else "info")
    return 0


def _ui_routes(server: _Server) -> list[Any]:
    """The web UI's routes (issue 14) when its module is there."""
    try:
        from runstream.server import ui_api  # type: ignore[attr-defined]
    except ImportError:
        return []
    routes: list[Any] = ui_api.routes(server.backend)
    return routes
