"""The first code a submitted job runs: ``python -m producers.job_bootstrap SCRIPT [ARGS...]``.

``experiment.submit()`` starts this module rather than the script itself, so
that, before a line of the script runs:

- a :class:`~producers.log_handler.RunLogHandler` sits on the root logger at
  level NOTSET (the level the script configures on the root logger decides
  what ships). ``logging.basicConfig`` keeps working: it is wrapped to set
  the handler aside while it runs (otherwise it would see a handler and do
  nothing). A record nothing else handles still reaches ``logging.lastResort``.
  The ``kafka`` logger (runstream's transport) starts at WARNING.
- the job dies with its submitter (Linux ``PR_SET_PDEATHSIG``), even if the
  submitter is SIGKILLed and cannot stop it;
- an uncaught exception's traceback, without this module's frames, goes to
  the file the submitter named in ``RUNSTREAM_JOB_ERROR_FILE``: the run's
  error details are then exactly the traceback, not whatever else the script
  printed to stderr last.

Why a ``-m`` wrapper and not ``sitecustomize``: it is explicit, works with a
script's own ``sitecustomize``, and does not run again in every Python
subprocess the job starts. The script then runs as ``__main__`` the way
``python SCRIPT`` runs it: ``sys.argv``, ``sys.path[0]`` (the script's
folder), ``__file__``, and a ``__main__`` module that stays in place (pickling
and ``multiprocessing`` spawn find it).
"""

from __future__ import annotations

import builtins
import ctypes
import importlib.machinery
import io
import logging
import os
import signal
import sys
import traceback
import types
from types import TracebackType
from typing import Any, Sequence

from .log_handler import RunLogHandler
from .jobs.config import ENV_ERROR_FILE, ENV_SUBMITTER_PID

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with_submitter() -> None:
    """Ask Linux to SIGTERM this process when the submitter's supervising thread ends."""
    expected = os.environ.pop(ENV_SUBMITTER_PID, "")
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the submitter's exit hooks still stop the job
        return
    if expected and str(os.getppid()) != expected:
        # The submitter died between fork and prctl: nobody would capture or end this run.
        os._exit(128 + int(signal.SIGTERM))


def _install_log_handler() -> None:
    # kafka-python is runstream's transport here, not the script's: its INFO chatter would land in the
    # job's stderr as soon as the script calls basicConfig(level=INFO). A script can set it back.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    root = logging.getLogger()
    handler = RunLogHandler(stand_in_for_last_resort=True)
    root.addHandler(handler)
    original = logging.basicConfig

    def basicConfig(**kwargs: Any) -> None:  # noqa: N802 - the name it replaces
        # basicConfig does nothing when the root logger has a handler; ours must not count.
        attached = handler in root.handlers
        if attached:
            root.removeHandler(handler)
        try:
            original(**kwargs)
        finally:
            if attached and handler not in root.handlers:
                root.addHandler(handler)

    basicConfig.__doc__ = original.__doc__
    logging.basicConfig = basicConfig


def _script_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the leading frames of this module (the traceback starts in the script)."""
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return tb


def _run_script(path: str) -> None:
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__dict__["__builtins__"] = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__spec__ = None
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def main(argv: Sequence[str]) -> int:
    """Run ``argv[0]`` as ``__main__`` with ``argv[1:]`` as its arguments; the exit code."""
    if not argv:
        print("usage: python -m producers.job_bootstrap SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    _die_with_submitter()
    error_file = os.environ.pop(ENV_ERROR_FILE, "")
    path = os.path.abspath(argv[0])
    sys.argv = [argv[0], *argv[1:]]
    sys.path[0] = os.path.dirname(path)
    _install_log_handler()
    try:
        _run_script(path)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = _script_traceback(exc.__traceback__)
        exc.with_traceback(tb)  # the printed traceback (it reads exc.__traceback__) starts in the script too
        if error_file:
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            try:
                with open(error_file, "w", encoding="utf-8", errors="replace") as f:
                    f.write(text)
            except OSError:
                pass  # the submitter falls back to the tail of stderr
        sys.excepthook(type(exc), exc, tb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
