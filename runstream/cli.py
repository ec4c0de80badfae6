"""The ``runstream`` command: argparse subcommands, each registered by the module that runs it.

Adding a subcommand is one entry in :data:`COMMANDS`: its name and
``"package.module:function"``, where ``function(subparsers)`` adds the parser(s)
and sets ``handler`` (a callable taking the parsed ``argparse.Namespace`` and
returning an exit code) with ``parser.set_defaults(handler=...)``.

A command line naming a subcommand loads only that subcommand's module:
``runstream submit`` does not pay for ingest's imports, and the owner a reader
starts (``runstream ingest --on-demand``) is up sooner. ``runstream --help``
loads them all.

This is an entry point: it alone configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType, MappingProxyType
from typing import Any

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: Mapping[str, str] = MappingProxyType({
    "ingest": "runstream.ingest_cmd:register",
    "spool": "runstream.spool_cmd:register",
    "exporter": "runstream.exporter_cmd:register",
    "submit": "runstream.jobs_cmd:register",  # registers `logs` too
    "logs": "runstream.jobs_cmd:register",
    "server": "runstream.server_cmd:register",
    "sweep": "runstream.sweep_cmd:register",
})
"""Subcommand -> the hook that registers it, ``module:function``."""

_CLEAN_STOP_BEFORE_START = frozenset({"ingest", "exporter", "server"})
"""Services: a SIGTERM before they installed their own handler (nothing read yet) is a clean stop, exit 0."""


def _load(hook: str) -> Callable[[Any], None]:
    module, _, function = hook.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the subcommands ``commands`` (default: all of them)."""
    parser = argparse.ArgumentParser(prog="runstream", description="runstream: run logging for ML sweeps")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hooks = dict.fromkeys(COMMANDS[name] for name in (COMMANDS if commands is None else commands))
    for hook in hooks:
        _load(hook)(subparsers)
    return parser


def _on_main_thread() -> bool:
    """True on the main thread (the only one that may install signal handlers)."""
    return threading.current_thread() is threading.main_thread()


def _named_command(argv: Sequence[str]) -> list[str] | None:
    """The subcommand the command line names (the first word that is not an option), if it is one of ours."""
    for word in argv:
        if not word.startswith("-"):
            return [word] if word in COMMANDS else None
    return None


def _exit_before_start(signum: int, frame: FrameType | None) -> None:
    """SIGTERM before the service installed its own handler: nothing was read, so exit now, cleanly (0).

    It exits at once instead of raising ``SystemExit``: an exception raised by a
    signal handler surfaces wherever the main thread is, and inside a weakref
    callback or a ``__del__`` (importlib's module locks have one) Python prints
    "Exception ignored" and carries on. The stop was lost there and the service
    then ran until killed.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # interrupted mid-write (a reentrant flush): what is left unwritten is lost
            pass
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runstream`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _named_command(argv)
    if command is not None and command[0] in _CLEAN_STOP_BEFORE_START and _on_main_thread():
        # Until the service installs its own handler (after its imports, which take a moment),
        # a SIGTERM is still a clean stop: nothing was read, so nothing is lost.
        signal.signal(signal.SIGTERM, _exit_before_start)
    if command is not None:
        # A command may rewrite its words first (`sweep --param --alpha=...`: a value that starts with a dash).
        normalize = getattr(importlib.import_module(COMMANDS[command[0]].partition(":")[0]), "normalize_argv", None)
        if normalize is not None:
            argv = normalize(argv)
    args = build_parser(command).parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose >= 2 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:
        logging.getLogger("kafka").setLevel(logging.WARNING)
        # clickhouse-driver logs a traceback for every failed connection attempt; the commands say
        # themselves, once, why ClickHouse is not available and whether they retry.
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
