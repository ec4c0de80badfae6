"""``RunLogHandler``: Python ``logging`` records as log events of a run.

    import logging
    from producers import Run, RunLogHandler

    run = Run.get_context()
    logging.getLogger().addHandler(RunLogHandler(run))

Each record becomes one ``LogLine(stream="logging")`` with its time, level,
logger name, message (``record.getMessage()``) and exception text (the
formatted ``exc_info`` and ``stack_info``). A message longer than the run's
``max_log_line_length`` is split into several lines; the exception text rides
on the last one, cut in the middle to four times that length (the ingest
side's rule).

Inside a job started by ``experiment.submit()`` the job bootstrap attaches one
to the root logger by itself (``producers.job_bootstrap``).

The handler never blocks the thread that logs:

- it decides what it skips before any lock (:meth:`RunLogHandler.handle`
  takes none: queueing is thread-safe by itself): records of the
  ``runstream`` and ``kafka`` loggers (``exclude``), the SDK's own
  diagnostics and kafka-python's; records emitted on one of the SDK's own
  threads (named ``runstream-*``: the emitter, the outbox replayer); records
  logged while this handler is already handling one on the same thread
  (re-entrancy). Those diagnostics may be logged while the very buffer this
  handler feeds is full, so they must never reach it;
- it never waits for room: a record that does not fit in the SDK's memory
  bound is dropped and counted (:attr:`RunLogHandler.dropped`), and the next
  record that fits is preceded by one WARNING line of the ``runstream``
  logger saying how many were dropped, so the gap shows in the run's log;
- records after the run ended (``RunNotActive``) are dropped quietly.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Callable, Sequence

from schemas.records import LogLine

from .errors import RunNotActive
from .run import Run
from .values import truncate_middle


__all__ = ["RunLogHandler"]


class RunLogHandler(logging.Handler):
    """A ``logging.Handler`` that ships records to ``run`` as log events.

    ``run=None`` means ``Run.get_context()``, resolved at the first record (so
    a script that never logs opens no connection). ``level`` defaults to
    NOTSET: the handler takes whatever the loggers let through, so the level
    the user configures on the root logger (``logging.basicConfig(level=...)``)
    decides. ``exclude`` lists logger-name prefixes never shipped.

    ``stand_in_for_last_resort=True`` (set by the job bootstrap) keeps
    Python's behaviour for unconfigured logging: a record that reaches no
    handler but this one is also passed to ``logging.lastResort`` (a WARNING
    still prints to stderr), as it would be without this handler.
    """

    def __init__(self, run: Run | None = None, level: int = logging.NOTSET, *,
                 exclude: Sequence[str] = ("runstream", "kafka"),
                 stand_in_for_last_resort: bool = False,
                 run_factory: Callable[[], Run] | None = None) -> None:
        super().__init__(level)
        self._run = run
        self._run_factory = run_factory
        self._exclude = tuple(exclude)
        self._last_resort = stand_in_for_last_resort
        self._local = threading.local()
        self._max_chars: int | None = None
        self._count_lock = threading.Lock()  # guards the two counters only; never held while waiting
        self._dropped = 0
        self._unreported = 0

    @property
    def run(self) -> Run:
        """The run records go to (resolved on first use when built with ``run=None``)."""
        run = self._run
        if run is None:
            if self._run_factory is not None:
                run = self._run_factory()
            else:
                run = Run.get_context()
            self._run = run
        return run

    @property
    def dropped(self) -> int:
        """Records dropped so far because the SDK's buffer was full (they are never waited for)."""
        return self._dropped

    def _skipped(self, record: logging.LogRecord) -> bool:
        name = record.name
        for prefix in self._exclude:
            if name == prefix or name.startswith(prefix + "."):
                return True
        return getattr(self._local, "busy", False) or threading.current_thread().name.startswith("runstream-")

    def handle(self, record: logging.LogRecord) -> bool:
        """Skip, filter and emit ``record`` without taking the handler's lock.

        ``logging.Handler.handle`` holds the handler lock around ``emit``: a
        record the SDK logs about itself while a user thread is inside
        ``emit`` would wait for that lock. Here nothing waits: what is skipped
        is decided first, and ``emit`` is thread-safe without the lock.
        """
        if self._last_resort:
            self._maybe_last_resort(record)
        if self._skipped(record):
            return False
        verdict = self.filter(record)
        if not verdict:
            return False
        if isinstance(verdict, logging.LogRecord):
            record = verdict
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Queue ``record`` as one (or, when long, several) log lines if they fit now; never raises, never waits."""
        if self._skipped(record):
            return
        self._local.busy = True
        try:
            run = self.run
            lines = self._lines(run, record)
            with self._count_lock:
                unreported = self._unreported
            if unreported:
                lines.insert(0, LogLine(int(record.created * 1000), "logging", "runstream", logging.WARNING,
                                        f"{unreported} logging records dropped: the SDK's buffer was full", None))
            if run.log_lines(lines, wait=False):
                if unreported:
                    with self._count_lock:
                        self._unreported -= unreported
            else:
                with self._count_lock:
                    self._dropped += 1
                    self._unreported += 1
        except RunNotActive:
            pass  # the run has ended; other handlers still see the record
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False

    def _lines(self, run: Run, record: logging.LogRecord) -> list[LogLine]:
        limit = self._max_chars
        if limit is None:
            limit = self._max_chars = run.experiment.workspace.settings.limits.max_log_line_length
        message = record.getMessage()
        exc_text = None
        if record.exc_info and record.exc_info[0] is not None:
            exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        elif record.exc_text:
            exc_text = record.exc_text
        if record.stack_info:
            exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else record.stack_info
        if exc_text is not None:
            exc_text = truncate_middle(exc_text, 4 * limit)
        time_ms = int(record.created * 1000)
        pieces = [message[i:i + limit] for i in range(0, len(message), limit)] or [""]
        last = len(pieces) - 1
        return [LogLine(time_ms, "logging", record.name, record.levelno, piece, exc_text if i == last else None)
                for i, piece in enumerate(pieces)]

    def _maybe_last_resort(self, record: logging.LogRecord) -> None:
        """Do what ``Logger.callHandlers`` would have done had this handler not been there."""
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level:
            return
        logger: logging.Logger | None = logging.Logger.manager.loggerDict.get(record.name)  # type: ignore[assignment]
        if not isinstance(logger, logging.Logger):
            logger = logging.getLogger()
        current: logging.Logger | None = logger
        while current is not None:
            if any(h is not self for h in current.handlers):
                return
            if not current.propagate:
                break
            current = current.parent
        last_resort.handle(record)
