"""Waiting for a submitted run: ``run.wait_for_completion()`` and the CLI's wait.

A job this process submitted is waited for locally (its output echoed live,
Ctrl-C stops it); any other run is polled through the store (its output
followed with :class:`~producers.jobs.logs.LogFollower`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from schemas.records import FINAL_STATUSES

from ..errors import JobFailed, ReadError, SdkError
from .config import JobResult
from .logs import LogFollower
from .process import Job, echo_lines
from .registry import job_of

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["wait_for_completion", "wait_result"]

_log = logging.getLogger("runstream.submit")


def wait_for_completion(run: Run, *, show_output: bool, raise_on_error: bool,
                        out: TextIO | None = None, err: TextIO | None = None,
                        poll_s: float = 1.0) -> dict[str, Any]:
    """``run.wait_for_completion()``: wait, optionally stream output, return details, raise ``JobFailed``."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    job: Job | None = getattr(run, "_job", None) or job_of(run.id)
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
    job: Job | None = getattr(run, "_job", None) or job_of(run.id)
    if job is None:
        raise SdkError(f"run {run.id} was not submitted by this process (or has ended)")
    return _wait_local(job, show_output, out if out is not None else sys.stdout, err if err is not None else sys.stderr)


def _wait_local(job: Job, show_output: bool, out: TextIO, err: TextIO) -> JobResult:
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
    reader = run.experiment.workspace.reader()
    follower = LogFollower(reader, run.id, streams=("stdout", "stderr")) if show_output else None
    while True:
        status = reader.get_status(run.id)
        if follower is not None:
            for line in follower.new_lines():
                echo_lines(out, [line.message])
        if status in FINAL_STATUSES:
            if follower is not None:
                for line in follower.new_lines():
                    echo_lines(out, [line.message])
            return dict(reader.get_details(run.id))
        time.sleep(poll_s)
