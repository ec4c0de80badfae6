"""This process's running jobs, and what happens to them when the process is stopped or ends.

Process-wide by nature: one SIGTERM handler and one exit hook serve every job
the process submitted. SIGTERM stops every job (its run ends Canceled); a
process that reaches its end waits for its jobs first (and says so), unless it
ends by Ctrl-C, which stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from .. import lifecycle

if TYPE_CHECKING:
    from .process import Job

__all__ = ["add", "install_hooks", "job_of", "remove", "running_jobs", "JobLauncher", "add_launcher",
           "remove_launcher"]

_log = logging.getLogger("runstream.submit")

_jobs_lock = threading.Lock()
_jobs: dict[str, Job] = {}
_hooks_installed = False
_previous_sigterm: Any = None
_launchers: list[JobLauncher] = []


class JobLauncher(Protocol):
    """Something in this process that starts jobs over time (a sweep): stopped before its jobs, waited for first."""

    @property
    def name(self) -> str:
        """What it is, for the message a process that waits for it prints (``sweep <run id>``)."""
        ...

    def cancel(self, reason: str) -> None:
        """Launch no more jobs and stop the running ones; non-blocking and safe in a signal handler."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it and its jobs have ended; False on timeout."""
        ...


def install_hooks(install_signal_handler: bool) -> None:
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


def running_jobs() -> list[Job]:
    """This process's jobs that have not ended yet."""
    with _jobs_lock:
        return list(_jobs.values())


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Only non-blocking work here (the main thread may be inside any lock):
    # ask every launcher and job to stop; ending the runs happens on their
    # supervising threads, and lifecycle's handler (next in the chain) waits for that.
    for launcher in list(_launchers):
        launcher.cancel("the submitting process received SIGTERM")
    for job in running_jobs():
        job.request_stop("the submitting process received SIGTERM")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _at_exit(reason: str) -> None:
    interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    _launchers_at_exit(reason, interrupted)
    jobs = running_jobs()
    if not jobs:
        return
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


def _say(message: str) -> None:
    # Printed, not only logged: see _at_exit.
    _log.info("%s", message)
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _launchers_at_exit(reason: str, interrupted: bool) -> None:
    """Launchers first: waiting for their running jobs alone would let them start more."""
    for launcher in list(_launchers):
        if reason == "sigterm":
            launcher.cancel("the submitting process received SIGTERM")
        elif interrupted:
            launcher.cancel("the submitting process was interrupted (KeyboardInterrupt)")
        else:
            _say(f"runstream: waiting for {launcher.name} to finish before exiting (Ctrl-C stops it)")
        try:
            launcher.wait(None if reason == "exit" and not interrupted else 60.0)
        except KeyboardInterrupt:
            launcher.cancel("the submitting process was interrupted (KeyboardInterrupt)")
            launcher.wait(60.0)


def add_launcher(launcher: JobLauncher) -> None:
    """Register a launcher that is starting (call :func:`install_hooks` first, from the main thread)."""
    with _jobs_lock:
        _launchers.append(launcher)


def remove_launcher(launcher: JobLauncher) -> None:
    """Forget a launcher that has ended."""
    with _jobs_lock:
        if launcher in _launchers:
            _launchers.remove(launcher)


def add(job: Job) -> None:
    """Register a job that is starting."""
    with _jobs_lock:
        _jobs[job.run.id] = job


def remove(job: Job) -> None:
    """Forget a job that has ended."""
    with _jobs_lock:
        if _jobs.get(job.run.id) is job:
            del _jobs[job.run.id]


def job_of(run_id: str) -> Job | None:
    """This process's running job of ``run_id``, if it submitted one that has not ended."""
    with _jobs_lock:
        return _jobs.get(run_id)
