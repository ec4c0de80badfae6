"""``runstream server``: the web UI (and its JSON API) over the runs of a home or a ClickHouse server.

    runstream server                                   # embedded: owns ./.runstream, ingests its spool
    runstream server --clickhouse clickhouse://127.0.0.1:9000/runstream --port 5000

Prints the address to open, then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from schemas.errors import PipelineError
from schemas.settings import IngestSettings

__all__ = ["register", "DEFAULT_PORT"]

log = logging.getLogger("runstream.server")

DEFAULT_PORT = 5000
"""MLflow's port: ``runstream server`` is also where MLflow clients point."""


def register(subparsers: Any) -> None:
    """Add ``runstream server``."""
    p = subparsers.add_parser(
        "server", help="serve the web UI over the runs (embedded home or ClickHouse)",
        description=(
            "Serve runstream's web UI and its JSON API (/api/ui/). With nothing configured it owns the home "
            "(./.runstream or RUNSTREAM_HOME), ingests its spool as runs log, and reads chDB; with --clickhouse "
            "(or RUNSTREAM_CLICKHOUSE) it reads that server. Every page, script and style is served locally."),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (default: $RUNSTREAM_KAFKA)")
    p.add_argument("--clickhouse", metavar="URL",
                   help="clickhouse://user:pass@host:9000/db (default: $RUNSTREAM_CLICKHOUSE)")
    p.add_argument("--home", type=Path, help="runstream home (default: $RUNSTREAM_HOME or ./.runstream)")
    p.set_defaults(handler=_server)


def _say(message: str) -> None:
    print(f"runstream server: {message}", file=sys.stderr, flush=True)


def _server(args: argparse.Namespace) -> int:
    from .server.app import create_app, serve
    from .server.reads import ServerReads
    from .server.ui_api import UiSettings, ui_routes

    try:
        settings = IngestSettings.resolve({"kafka": args.kafka, "clickhouse": args.clickhouse, "home": args.home},
                                          env=dict(os.environ))
    except PipelineError as exc:
        _say(str(exc))
        return 2
    if not 0 < args.port < 65536:
        _say(f"port out of range: {args.port}")
        return 2
    reads = ServerReads(settings, progress=lambda m: log.info("%s", m))
    app = create_app(ui_routes=ui_routes(reads.connect, UiSettings(lost_after_s=settings.heartbeat_lost_s)),
                     startup=reads.start, shutdown=reads.stop)
    where = settings.clickhouse if settings.clickhouse else f"{settings.home} (embedded)"
    _say(f"runs from {where}; open http://{args.host}:{args.port}/")
    try:
        serve(app, host=args.host, port=args.port)
    except PipelineError as exc:
        _say(str(exc))
        return 1
    return 0
