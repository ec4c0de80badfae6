"""A development server for the UI (until `runstream server` includes it).

    .venv/bin/python ui/dev/serve.py HOME [--port 48000]          # embedded chDB under HOME
    .venv/bin/python ui/dev/serve.py --clickhouse clickhouse://127.0.0.1:49000/runstream

Ingests HOME's spool once at start (embedded), then serves ``ui_routes`` over the store.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    import uvicorn
    from starlette.applications import Starlette

    from consumers.service import drain_spool
    from consumers.store import open_store
    from runstream.server.ui_api import ui_routes
    from schemas.limits import RunLimits
    from store._sqlparts import RunnerReads
    from store.ui_queries import UI_QUERIES

    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path, nargs="?", default=Path(".runstream"))
    parser.add_argument("--clickhouse", default=None)
    parser.add_argument("--port", type=int, default=48000)
    args = parser.parse_args()
    store = open_store(args.clickhouse, args.home)
    store.migrate()
    if args.clickhouse is None:
        drain_spool(store, args.home, limits=RunLimits(), deadline=time.monotonic() + 600)
    reads = RunnerReads(store, UI_QUERIES)
    app = Starlette(routes=ui_routes(lambda: contextlib.nullcontext(reads)))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
