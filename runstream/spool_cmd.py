"""``runstream spool status`` and ``runstream spool replay`` (the tools are :mod:`producers.spool_tools`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from producers import spool_tools
from schemas.errors import PipelineError
from schemas.secrets import redact_logs
from schemas.settings import Settings

__all__ = ["register"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    """Add ``runstream spool status|replay``."""
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
    settings = Settings.resolve({"home": args.home}, env=os.environ)
    print(spool_tools.format_status(spool_tools.spool_status(settings.home)))
    return 0


def _spool_replay(args: argparse.Namespace) -> int:
    try:
        settings = Settings.resolve({"home": args.home, "kafka": args.kafka, "topic": args.topic}, env=os.environ)
    except PipelineError as exc:
        _say(f"runstream spool replay: {exc}")
        return 2
    if settings.kafka is None:
        _say("runstream spool replay: no Kafka to replay into: pass --kafka or set RUNSTREAM_KAFKA")
        return 2
    redact_logs(settings.secret_values())

    def progress(p: Any) -> None:
        if p.done:
            _say(f"  {p.segment.name}: {p.segment_records} message(s) sent"
                 + (f", unreadable tail ({p.corrupt})" if p.corrupt else ""))

    _say(f"replaying abandoned segments of {settings.outbox_dir} into {settings.topic} on {settings.kafka}")
    try:
        options = {k: v for k, v in settings.kafka_client_options().items() if k != "bootstrap_servers"}
        result = spool_tools.replay(settings.home, settings.kafka, settings.topic, progress=progress,
                                    kafka_options=options)
    except PipelineError as exc:
        _say(f"runstream spool replay: {exc}")
        return 1
    _say(f"done: {result.records} message(s) from {result.segments} segment(s); "
         f"{result.skipped_live} segment(s) of running writers left alone"
         + (f"; {result.rejected} refused by the broker (kept in outbox/rejected)" if result.rejected else "")
         + (f"; {len(result.corrupt)} segment(s) had an unreadable tail" if result.corrupt else ""))
    return 0 if not result.corrupt else 1
