"""Submitted jobs: ``experiment.submit(ScriptRunConfig(...))`` runs a script as a run, locally.

    from producers import Experiment, ScriptRunConfig, Workspace

    config = ScriptRunConfig(source_directory="src", script="train.py", arguments=["--lr", "0.1"])
    run = Experiment(Workspace(), "mnist").submit(config, tags={"sweep": "lr"})
    details = run.wait_for_completion(show_output=True)   # raises JobFailed if the script failed

How a job runs:

- The submitter starts the run (``RunStarted``, kind "submitted") and a
  supervising thread, which starts ``python -m producers._job_bootstrap
  SCRIPT ARGS`` in ``source_directory``, in a new session (its own process
  group, so a terminal's Ctrl-C reaches the submitter, not the job). The run's
  context and the workspace's settings travel in the environment
  (``RUNSTREAM_RUN_ID``, ``RUNSTREAM_EXPERIMENT``, ``RUNSTREAM_CONFIG`` -> a
  private settings file); ``Run.get_context()`` in the script attaches to the
  run. ``PYTHONUNBUFFERED=1`` unless the config sets it, so output is live.
- Two reader threads turn the job's stdout and stderr into log lines of the
  run (``stream`` "stdout" / "stderr", level INFO / WARNING, the time each
  line was read, never decreasing). Memory stays bounded: a partial line holds
  at most ``max_log_line_length`` characters (longer lines are split), bytes
  are decoded as UTF-8 with ``errors="replace"``, and the emitter's
  ``max_buffer_bytes`` applies (when it is full the readers wait, the pipe
  fills, the job's writes block: back-pressure, not growth).
- When the script exits, the rest of its process group is killed (the job is
  over), ``./outputs`` is uploaded as ``outputs/...`` (files over
  ``max_file_bytes`` or unreadable are skipped with a warning, logged and kept
  in the run's log), and the run ends: exit 0 -> Completed; otherwise Failed
  with the script's traceback (or the tail of its stderr, or the exit code /
  signal) as error details, at most ``max_error_details_length`` (3,000)
  characters.
- Stopping: Ctrl-C in ``wait_for_completion``, SIGTERM of the submitter, or
  the submitter exiting after a KeyboardInterrupt sends SIGTERM to the job's
  process group, then SIGKILL after ``stop_grace_s`` (10 s); the run ends
  Canceled. If the submitter dies outright (SIGKILL), Linux stops the job
  (``PR_SET_PDEATHSIG``) and the run reads as Failed ("process lost") once its
  heartbeats stop. A submitter that simply reaches its end while a job still
  runs waits for the job first (logged), like a terminal waiting for a
  foreground command.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TextIO

from schemas.records import FINAL_STATUSES, LogLine

from . import lifecycle
from ._job_capture import LineSplitter, TextTail
from .errors import ConfigurationError, InvalidValueType, JobFailed, ReadError, SdkError
from .files import check_artifact_path, folder_files
from .settings import ENV_CLICKHOUSE, ENV_CONFIG, ENV_HOME, ENV_KAFKA, ENV_TOPIC, WorkspaceSettings
from .values import truncate_middle

if TYPE_CHECKING:
    from .experiment import Experiment
    from .run import Run

__all__ = ["ScriptRunConfig", "JobEnvironment", "JobResult", "submit", "wait_for_completion", "wait_result",
           "exit_code_of", "job_of"]

_log = logging.getLogger("runstream.submit")

STDOUT_LEVEL = logging.INFO
"""Level of a captured stdout line."""
STDERR_LEVEL = logging.WARNING
"""Level of a captured stderr line (stderr is not only errors: progress bars, logging's default output)."""

_READ_BYTES = 1 << 16
_ECHO_BACKLOG_LINES = 2_000
"""Lines kept for a ``show_output=True`` that starts after the job did (older ones: ``runstream logs``)."""
_MAX_SKIP_WARNINGS = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class JobEnvironment:
    """What a job runs with: extra environment variables and the interpreter.

    ``interpreter_path`` None = the submitting interpreter (``sys.executable``);
    another one must have runstream installed. Field names follow Azure ML's
    ``Environment`` (``environment_variables``, ``python.interpreter_path``).
    """

    environment_variables: Mapping[str, str] = field(default_factory=dict)
    interpreter_path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.environment_variables, Mapping):
            raise InvalidValueType("environment_variables must be a dict of str -> str")
        for key, value in self.environment_variables.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key or "\x00" in key + value:
                raise ConfigurationError(f"environment variable {key!r}={value!r}: names and values must be str, "
                                         "names non-empty without '='")
        object.__setattr__(self, "environment_variables", dict(self.environment_variables))
        if self.interpreter_path is not None and not isinstance(self.interpreter_path, str):
            raise InvalidValueType("interpreter_path must be a str")


@dataclass(frozen=True, slots=True)
class ScriptRunConfig:
    """A script to submit: ``ScriptRunConfig(source_directory, script, arguments=None, environment=None)``.

    ``script`` is relative to ``source_directory`` (or absolute); the job runs
    with ``source_directory`` as its working directory. ``arguments`` are
    passed as ``sys.argv[1:]`` (numbers and other values are turned into
    str). ``environment`` is a :class:`JobEnvironment`, or a dict of extra
    environment variables. Positional arguments are allowed, as in Azure ML.
    """

    source_directory: str | os.PathLike[str]
    script: str | os.PathLike[str]
    arguments: Sequence[Any] | None = None
    environment: JobEnvironment | Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source_directory, (str, os.PathLike)):
            raise InvalidValueType("source_directory must be a path")
        if not isinstance(self.script, (str, os.PathLike)) or not str(self.script):
            raise InvalidValueType("script must be a path")
        if self.arguments is not None:
            if isinstance(self.arguments, (str, bytes)) or not isinstance(self.arguments, Sequence):
                raise InvalidValueType("arguments must be a list (of str, numbers, ...)")
            object.__setattr__(self, "arguments", [str(a) for a in self.arguments])
        env = self.environment
        if env is not None and not isinstance(env, JobEnvironment):
            if not isinstance(env, Mapping):
                raise InvalidValueType("environment must be a JobEnvironment or a dict of environment variables")
            object.__setattr__(self, "environment", JobEnvironment(environment_variables=env))

    @property
    def job_environment(self) -> JobEnvironment:
        """The environment as a :class:`JobEnvironment` (an empty one when none was given)."""
        return self.environment if isinstance(self.environment, JobEnvironment) else JobEnvironment()

    def resolve(self) -> tuple[Path, Path]:
        """(working directory, script path), both absolute; ``ConfigurationError`` when missing."""
        directory = Path(self.source_directory).expanduser().absolute()
        if not directory.is_dir():
            raise ConfigurationError(f"source_directory {directory} is not a folder")
        script = Path(self.script).expanduser()
        script = script if script.is_absolute() else directory / script
        if not script.is_file():
            raise ConfigurationError(f"script {script} does not exist")
        return directory, script


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended, as the submitting process saw it."""

    status: str
    """Completed, Failed or Canceled."""
    exit_code: int | None
    """The script's exit code; negative = killed by that signal; None = it never started."""
    error_details: str | None
    skipped_outputs: tuple[str, ...] = ()
    """Files of ./outputs not uploaded, each with the reason."""
    dropped_lines: int = 0
    """Output lines the emitter refused (``on_buffer_full="raise"`` with nothing draining)."""


def exit_code_of(result: JobResult) -> int:
    """A shell's exit code for ``result``: the script's own, 128+N for signal N, 130 when canceled by Ctrl-C."""
    code = result.exit_code
    if code is None:
        return 130 if result.status == "Canceled" else 1 if result.status == "Failed" else 0
    return 128 - code if code < 0 else code


# -- the process-wide registry of this process's running jobs ----------------------------------------

_jobs_lock = threading.Lock()
_jobs: dict[str, _Job] = {}
_hooks_installed = False
_previous_sigterm: Any = None


def _install_hooks(install_signal_handler: bool) -> None:
    """Once per process: stop jobs on SIGTERM, and at exit either wait for them or stop them."""
    global _hooks_installed, _previous_sigterm
    with _jobs_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    lifecycle.add_exit_callback(_at_exit)
    if not install_signal_handler or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            return  # the submitter ignores SIGTERM; so do its jobs
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return
    _previous_sigterm = previous


def _running_jobs() -> list[_Job]:
    with _jobs_lock:
        return list(_jobs.values())


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Only non-blocking work here (the main thread may be inside any lock):
    # ask every job to stop; ending the runs happens on their supervising
    # threads, and lifecycle's handler (next in the chain) waits for that.
    for job in _running_jobs():
        job.request_stop("the submitting process received SIGTERM")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _at_exit(reason: str) -> None:
    jobs = _running_jobs()
    if not jobs:
        return
    interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    for job in jobs:
        if reason == "sigterm":
            job.request_stop("the submitting process received SIGTERM")
        elif interrupted:
            job.request_stop("the submitting process was interrupted (KeyboardInterrupt)")
        elif not job.stop_requested:
            # Printed, not only logged: the SDK's logger has no handler unless the app configured one,
            # and a process that seems to hang at its end must say why.
            message = f"runstream: waiting for submitted run {job.run.id} to finish before exiting (Ctrl-C stops it)"
            _log.info("%s", message)
            try:
                print(message, file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass
    for job in jobs:
        try:
            job.wait(None if reason == "exit" and not job.stop_requested else job.stop_grace_s + 30.0)
        except KeyboardInterrupt:
            job.request_stop("the submitting process was interrupted (KeyboardInterrupt)")
            job.wait(job.stop_grace_s + 30.0)


# -- one job ----------------------------------------------------------------------------------------


class _Job:
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

    def _command(self, script: Path) -> list[str]:
        python = self.config.job_environment.interpreter_path or sys.executable
        return [python, "-m", "producers._job_bootstrap", str(script), *(self.config.arguments or [])]

    def _environment(self) -> dict[str, str]:
        # Imported here, not at the top: `python -m producers._job_bootstrap` must not find
        # its own module already imported by the package (runpy warns about that).
        from ._job_bootstrap import ENV_ERROR_FILE, ENV_SUBMITTER_PID

        env = dict(os.environ)
        env.update(self.config.job_environment.environment_variables)
        env.setdefault("PYTHONUNBUFFERED", "1")
        settings_file = self._tmp / "runstream.json"
        _write_settings(self._settings, settings_file)
        s = self._settings
        # The environment wins over a config file, so it must say the same.
        env.update({
            ENV_CONFIG: str(settings_file),
            ENV_KAFKA: s.kafka or "",
            ENV_CLICKHOUSE: s.clickhouse or "",
            ENV_HOME: str(s.home),
            ENV_TOPIC: s.topic,
            "RUNSTREAM_RUN_ID": self.run.id,
            "RUNSTREAM_EXPERIMENT": self.run.experiment.name,
            "RUNSTREAM_PARENT_RUN_ID": self.run.parent.id if self.run.parent is not None else "",
            ENV_ERROR_FILE: str(self._tmp / "error.txt"),
            ENV_SUBMITTER_PID: str(os.getpid()),
        })
        return env

    def _supervise(self, workdir: Path, script: Path) -> None:
        # The process is started from this thread because Linux's PR_SET_PDEATHSIG
        # fires when the *thread* that forked the child ends: this one lives
        # exactly as long as the job.
        try:
            self._proc = subprocess.Popen(
                self._command(script), cwd=workdir, env=self._environment(), stdin=subprocess.DEVNULL,
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
                _echo_lines(echo[0] if stream == "stdout" else echo[1], texts)

    def show_output(self, out: TextIO, err: TextIO) -> None:
        """From now on write the job's lines to ``out``/``err``, after those captured so far (bounded)."""
        with self._lock:
            if self._echo is not None:
                return
            if self._backlog_dropped:
                err.write(f"[runstream: {self._backlog_dropped} earlier line(s) not shown; "
                          f"`runstream logs {self.run.id}` has them]\n")
            for stream, text in self._backlog:
                _echo_lines(out if stream == "stdout" else err, [text])
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
            with _jobs_lock:
                if _jobs.get(self.run.id) is self:
                    del _jobs[self.run.id]
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self._done.set()

    def _end_run(self, code: int | None, start_error: str | None, workdir: Path) -> JobResult:
        skipped = self._upload_outputs(workdir / "outputs") if start_error is None else []
        if self._dropped:
            _log.warning("runstream: run %s: %d output line(s) could not be queued and were dropped",
                         self.run.id, self._dropped)
        run = self.run
        if self._stop_reason is not None:
            run.cancel()
            return JobResult(status="Canceled", exit_code=code, error_details=None,
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

    def _upload_outputs(self, folder: Path) -> list[str]:
        """Upload ./outputs as outputs/...; what cannot go is skipped, warned about and kept in the run's log."""
        if not folder.is_dir():
            return []
        run = self.run
        limit = self._limits.max_file_bytes
        skipped: list[str] = []
        try:
            files = folder_files(folder)
        except (OSError, SdkError) as exc:
            files = []
            skipped.append(f"outputs: {exc}")
        for relative, full in files:
            name = f"outputs/{relative}"
            try:
                check_artifact_path(name)
                size = full.stat().st_size
                if size > limit:
                    skipped.append(f"{name}: {size} bytes, over the {limit}-byte file limit (max_file_bytes)")
                    continue
                run.upload_file(name, full)
            except (OSError, SdkError) as exc:
                skipped.append(f"{name}: {exc}")
        if skipped:
            shown = skipped[:_MAX_SKIP_WARNINGS]
            more = len(skipped) - len(shown)
            text = (f"runstream: {len(skipped)} file(s) of ./outputs were not uploaded to run {run.id}:\n  "
                    + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))
            _log.warning("%s", text)
            try:
                run.log_lines([LogLine(int(self._clock() * 1000), "logging", "runstream.submit", logging.WARNING,
                                       text[:self._limits.max_log_line_length])])
            except SdkError:
                pass
        return skipped

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


def _echo_lines(stream: TextIO, texts: list[str]) -> None:
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


def _write_settings(settings: WorkspaceSettings, path: Path) -> None:
    """The workspace settings as a ``runstream.json`` the job's ``Workspace.default()`` reads (mode 0600)."""
    import json

    data: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "limits":
            value = value.to_dict()
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        data[f.name] = value
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the workspace settings cannot be passed to a job (kafka_options must be "
                                 f"JSON values): {exc}") from exc
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


# -- the API behind Experiment.submit and Run.wait_for_completion --------------------------------------


def submit(experiment: Experiment, config: ScriptRunConfig, tags: Mapping[str, str | None] | None = None, *,
           stop_grace_s: float = 10.0) -> Run:
    """Start ``config``'s script as a new run of ``experiment``; returns the running run at once.

    Checks the config first (``ConfigurationError``: no such folder or
    script; nothing is logged). A script that cannot even start (a missing
    interpreter) gives a run that is already Failed.
    """
    from .run import Run

    if not isinstance(config, ScriptRunConfig):
        raise InvalidValueType(f"submit takes a ScriptRunConfig, got {type(config).__name__}")
    workdir, script = config.resolve()
    run = Run._start(experiment, display_name=None, tags=tags, properties=None, kind="submitted")
    settings = experiment.workspace.settings
    _install_hooks(settings.install_signal_handlers)
    job = _Job(run, config, stop_grace_s=stop_grace_s)
    with _jobs_lock:
        _jobs[run.id] = job
    job.start(workdir, script)
    run._job = job
    _log.debug("runstream: submitted %s as run %s (experiment %s)", script.name, run.id, experiment.name)
    return run


def job_of(run_id: str) -> _Job | None:
    """This process's running job of ``run_id``, if it submitted one that has not ended."""
    with _jobs_lock:
        return _jobs.get(run_id)


def wait_for_completion(run: Run, *, show_output: bool, raise_on_error: bool,
                        out: TextIO | None = None, err: TextIO | None = None,
                        poll_s: float = 1.0) -> dict[str, Any]:
    """``run.wait_for_completion()``: wait, optionally stream output, return details, raise ``JobFailed``."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    job: _Job | None = getattr(run, "_job", None) or job_of(run.id)
    result: JobResult | None = None
    if job is not None:
        result = _wait_local(job, show_output, out, err)
        details = _details_after(run, result)
        status, error, code = result.status, result.error_details, result.exit_code
    else:
        details = _wait_remote(run, show_output, out, poll_s)
        status = details.get("status", "")
        error = (details.get("error") or {}).get("message")
        code = None
    if raise_on_error and status == "Failed":
        raise JobFailed(f"run {run.id} failed:\n{error or '(no error details)'}", run_id=run.id,
                        error_details=error, exit_code=code)
    return details


def wait_result(run: Run, *, show_output: bool = False, out: TextIO | None = None,
                err: TextIO | None = None) -> JobResult:
    """Wait for a job this process submitted and return how it ended, without reading the store (the CLI's wait).

    Ctrl-C stops the job (Canceled; a second Ctrl-C kills it) and re-raises.
    """
    job: _Job | None = getattr(run, "_job", None) or job_of(run.id)
    if job is None:
        raise SdkError(f"run {run.id} was not submitted by this process (or has ended)")
    return _wait_local(job, show_output, out if out is not None else sys.stdout, err if err is not None else sys.stderr)


def _wait_local(job: _Job, show_output: bool, out: TextIO, err: TextIO) -> JobResult:
    if show_output:
        job.show_output(out, err)
    try:
        job.wait()
    except KeyboardInterrupt:
        job.request_stop("interrupted (Ctrl-C) while waiting for it")
        try:
            job.wait()
        except KeyboardInterrupt:
            job.kill()  # a second Ctrl-C: no more grace
            job.wait()
        raise
    assert job.result is not None
    return job.result


def _details_after(run: Run, result: JobResult) -> dict[str, Any]:
    """The run's details read back; what this process knows when they cannot be read."""
    try:
        details: dict[str, Any] = dict(run.get_details())
    except ReadError as exc:
        _log.warning("runstream: run %s ended %s, but its details could not be read back: %s",
                     run.id, result.status, exc)
        details = {"runId": run.id, "experiment": run.experiment.name, "kind": "submitted", "status": result.status,
                   "error": {"code": "UserError", "message": result.error_details} if result.status == "Failed"
                   else None}
    return details


def _wait_remote(run: Run, show_output: bool, out: TextIO, poll_s: float) -> dict[str, Any]:
    """A run this process did not submit: poll its status (and, with ``show_output``, its output)."""
    from ._job_logs import LogFollower

    reader = run.experiment.workspace.reader()
    follower = LogFollower(reader, run.id, streams=("stdout", "stderr")) if show_output else None
    while True:
        status = reader.get_status(run.id)
        if follower is not None:
            for line in follower.new_lines():
                _echo_lines(out, [line.message])
        if status in FINAL_STATUSES:
            if follower is not None:
                for line in follower.new_lines():
                    _echo_lines(out, [line.message])
            return dict(reader.get_details(run.id))
        time.sleep(poll_s)
