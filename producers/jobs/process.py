"""One submitted job: its process, the capture of its output, stopping it, and ending its run.

A supervising thread starts the process (``PR_SET_PDEATHSIG`` fires when the
thread that forked the child ends, so this thread lives exactly as long as the
job) and two reader threads turn its stdout and stderr into the run's log
lines. When the script exits, the rest of its process group is killed,
``./outputs`` is uploaded (:mod:`~producers.jobs.outputs`) and the run ends:
Completed, Failed with the error details, or Canceled when it was stopped.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from schemas.records import LogLine

from ..errors import SdkError
from ..values import truncate_middle
from . import registry
from .capture import LineSplitter, TextTail
from .config import JobResult, ScriptRunConfig
from .environment import job_command, job_environment
from .outputs import upload_outputs

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["Job", "STDOUT_LEVEL", "STDERR_LEVEL", "echo_lines", "start_job"]

_log = logging.getLogger("runstream.submit")

STDOUT_LEVEL = logging.INFO
"""Level of a captured stdout line."""
STDERR_LEVEL = logging.WARNING
"""Level of a captured stderr line (stderr is not only errors: progress bars, logging's default output)."""

_READ_BYTES = 1 << 16
_ECHO_BACKLOG_LINES = 2_000
"""Lines kept for a ``show_output=True`` that starts after the job did (older ones: ``runstream logs``)."""


def start_job(run: Run, config: ScriptRunConfig, *, stop_grace_s: float = 10.0) -> Job:
    """Run ``config``'s script for ``run`` (already started, kind "submitted"); returns once the process runs.

    ``ConfigurationError`` when the folder or script is missing (check with
    ``config.resolve()`` before starting the run). A script that cannot even
    start (a missing interpreter) ends the run Failed at once.
    """
    workdir, script = config.resolve()
    registry.install_hooks(run.experiment.workspace.settings.install_signal_handlers)
    job = Job(run, config, stop_grace_s=stop_grace_s)
    registry.add(job)
    job.start(workdir, script)
    _log.debug("runstream: submitted %s as run %s (experiment %s)", script.name, run.id, run.experiment.name)
    return job


class Job:
    """A running script: the process, its two reader threads and the supervising thread."""

    def __init__(self, run: Run, config: ScriptRunConfig, *, stop_grace_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.run = run
        self.config = config
        self.stop_grace_s = stop_grace_s
        self._clock = clock
        settings = run.experiment.workspace.settings
        self._settings = settings
        self._limits = settings.limits
        self._lock = threading.Lock()  # stamps, queues and echoes lines; one order for both streams
        self._last_ms = 0
        self._tail = TextTail(self._limits.max_error_details_length)
        self._backlog: deque[tuple[str, str]] = deque(maxlen=_ECHO_BACKLOG_LINES)
        self._backlog_dropped = 0
        self._echo: tuple[TextIO, TextIO] | None = None
        self._dropped = 0
        self._drop_warned = False
        self._proc_lock = threading.Lock()  # signals vs reaping: never signal a reaped (reusable) pgid
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaped = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._exited = threading.Event()
        self._done = threading.Event()
        self._stop_reason: str | None = None
        self._stop_reading = threading.Event()
        self._kill_timer: threading.Timer | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="runstream-job-"))
        self.result: JobResult | None = None

    # -- starting -------------------------------------------------------------------

    def start(self, workdir: Path, script: Path) -> None:
        """Start the supervising thread, which starts the process; returns once it runs (or failed to)."""
        thread = threading.Thread(target=self._supervise, args=(workdir, script),
                                  name=f"runstream-job-{self.run.id[:40]}", daemon=True)
        thread.start()
        self._started.wait()

    def _supervise(self, workdir: Path, script: Path) -> None:
        # The process is started from this thread because Linux's PR_SET_PDEATHSIG
        # fires when the *thread* that forked the child ends: this one lives
        # exactly as long as the job.
        try:
            self._proc = subprocess.Popen(
                job_command(self.config, script), cwd=workdir,
                env=job_environment(self.run, self.config, self._tmp), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            self._finish(None, f"the job could not start: {type(exc).__name__}: {exc}", workdir)
            return
        self._started.set()
        proc = self._proc
        assert proc.stdout is not None and proc.stderr is not None
        readers = [threading.Thread(target=self._read, args=(stream, name), daemon=True,
                                    name=f"runstream-job-{name}")
                   for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
        for reader in readers:
            reader.start()
        code: int | None = None
        try:
            self._wait_exit(proc)
            self._exited.set()
            with self._proc_lock:
                _killpg(proc.pid, signal.SIGKILL)  # leftovers of a finished job (pgid kept by the zombie)
                code = proc.wait()
                self._reaped = True
            for reader in readers:
                reader.join(2.0)
            self._stop_reading.set()  # a process that left the group may still hold a pipe
            for reader in readers:
                reader.join()
        finally:
            proc.stdout.close()
            proc.stderr.close()
            self._finish(code, None, workdir)

    @staticmethod
    def _wait_exit(proc: subprocess.Popen[bytes]) -> None:
        """Block until the script exits, without reaping it (so its pgid cannot be reused meanwhile)."""
        while True:
            try:
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                return
            except InterruptedError:
                continue
            except ChildProcessError:
                return

    # -- capturing ------------------------------------------------------------------

    def _read(self, stream: Any, name: str) -> None:
        fd = stream.fileno()
        splitter = LineSplitter(self._limits.max_log_line_length)
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            if not poller.poll(200):
                if self._stop_reading.is_set():
                    break
                continue
            try:
                data = os.read(fd, _READ_BYTES)
            except OSError:
                break
            if not data:
                break
            lines = splitter.feed(data)
            if lines:
                self._capture(name, lines)
        rest = splitter.finish()
        if rest:
            self._capture(name, rest)

    def _capture(self, stream: str, texts: list[str]) -> None:
        level = STDOUT_LEVEL if stream == "stdout" else STDERR_LEVEL
        with self._lock:
            now = int(self._clock() * 1000)
            if now < self._last_ms:
                now = self._last_ms  # the reader orders by time: never let the clock step back
            self._last_ms = now
            try:
                self.run.log_lines([LogLine(now, stream, "", level, text) for text in texts])
            except SdkError as exc:
                self._dropped += len(texts)
                if not self._drop_warned:
                    self._drop_warned = True
                    _log.warning("runstream: run %s: output lines are being dropped: %s", self.run.id, exc)
            if stream == "stderr":
                for text in texts:
                    self._tail.add(text)
            echo = self._echo
            if echo is None:
                backlog = self._backlog
                overflow = len(backlog) + len(texts) - _ECHO_BACKLOG_LINES
                if overflow > 0:
                    self._backlog_dropped += overflow
                backlog.extend((stream, text) for text in texts[-_ECHO_BACKLOG_LINES:])
            else:
                echo_lines(echo[0] if stream == "stdout" else echo[1], texts)

    def show_output(self, out: TextIO, err: TextIO) -> None:
        """From now on write the job's lines to ``out``/``err``, after those captured so far (bounded)."""
        with self._lock:
            if self._echo is not None:
                return
            if self._backlog_dropped:
                err.write(f"[runstream: {self._backlog_dropped} earlier line(s) not shown; "
                          f"`runstream logs {self.run.id}` has them]\n")
            for stream, text in self._backlog:
                echo_lines(out if stream == "stdout" else err, [text])
            self._backlog.clear()
            self._echo = (out, err)
        out.flush()
        err.flush()

    # -- stopping -------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once someone asked the job to stop (its run will end Canceled)."""
        return self._stop_reason is not None

    def request_stop(self, reason: str) -> None:
        """SIGTERM the job's process group now, SIGKILL it after ``stop_grace_s``; never blocks."""
        if self._exited.is_set():
            return  # the script ended by itself: its exit code decides the status
        first = self._stop_reason is None
        if first:
            self._stop_reason = reason
            _log.warning("runstream: stopping run %s: %s", self.run.id, reason)
        self._signal(signal.SIGTERM)
        if first:
            timer = threading.Timer(self.stop_grace_s, self._signal, (signal.SIGKILL,))
            timer.daemon = True
            self._kill_timer = timer
            timer.start()

    def kill(self) -> None:
        """SIGKILL the job's process group (a second Ctrl-C)."""
        if self._stop_reason is None:
            self._stop_reason = "killed"
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with self._proc_lock:
            if self._proc is not None and not self._reaped:
                _killpg(self._proc.pid, signum)

    # -- ending ---------------------------------------------------------------------

    def _finish(self, code: int | None, start_error: str | None, workdir: Path) -> None:
        try:
            self.result = self._end_run(code, start_error, workdir)
        except BaseException as exc:  # the run must not be left waiting forever
            _log.exception("runstream: ending run %s failed", self.run.id)
            self.result = JobResult(status="Failed", exit_code=code, error_details=f"runstream: {exc}")
        finally:
            registry.remove(self)
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self._done.set()

    def _end_run(self, code: int | None, start_error: str | None, workdir: Path) -> JobResult:
        skipped = (upload_outputs(self.run, workdir / "outputs", self._limits, self._clock)
                   if start_error is None else [])
        if self._dropped:
            _log.warning("runstream: run %s: %d output line(s) could not be queued and were dropped",
                         self.run.id, self._dropped)
        run = self.run
        if self._stop_reason is not None:
            reason = truncate_middle(self._stop_reason, self._limits.max_error_details_length)
            run._end("Canceled", reason)  # the reason is the Canceled run's details (a sweep's policy, SIGTERM...)
            return JobResult(status="Canceled", exit_code=code, error_details=reason,
                             skipped_outputs=tuple(skipped), dropped_lines=self._dropped)
        if code == 0:
            run.complete()
            return JobResult(status="Completed", exit_code=0, error_details=None, skipped_outputs=tuple(skipped),
                             dropped_lines=self._dropped)
        details = start_error or self._error_details(code)
        run.fail(details)
        return JobResult(status="Failed", exit_code=code,
                         error_details=truncate_middle(details, self._limits.max_error_details_length),
                         skipped_outputs=tuple(skipped), dropped_lines=self._dropped)

    def _error_details(self, code: int | None) -> str:
        limit = self._limits.max_error_details_length
        try:
            traceback_text = (self._tmp / "error.txt").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            traceback_text = ""
        if traceback_text:
            return traceback_text  # Run.fail cuts it in the middle: the head says where, the tail what
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        head = f"{self.config.script} {how}"
        tail = self._tail.text()
        if not tail:
            return head
        head += "; the end of its stderr:\n"
        room = limit - len(head)
        return head + (tail if len(tail) <= room else "..." + tail[-(room - 3):])

    # -- waiting --------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end and its run to be ended; True when it did within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            step = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if step <= 0:
                return False
            self._done.wait(step)  # short steps: Ctrl-C is seen at once
        return True


def echo_lines(stream: TextIO, texts: list[str]) -> None:
    """Write lines to a terminal stream; a closed one is ignored (it must not stop the capture)."""
    try:
        stream.write("\n".join(texts) + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed terminal must not stop the capture


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
