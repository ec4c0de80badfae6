"""Test helpers that run the ``runstream`` command itself (shipped, like ``consumers.testing``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Mapping, Sequence

__all__ = ["IngestProcess"]


class IngestProcess:
    """``runstream ingest`` in a subprocess, output in ``log_path``; ``kill()`` is SIGKILL, ``stop()`` SIGTERM."""

    def __init__(self, args: Sequence[str], log_path: Any, env: Mapping[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "runstream", "ingest", "--metrics-port", "0", *args]
        self.log_path = log_path
        # Configured by its arguments and ``env`` only: RUNSTREAM_* of the calling shell (``make test``
        # exports the stack's) must not turn an embedded worker into a Kafka one.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        self.env = {**inherited, **(env or {})}
        self.proc: Any = None

    def start(self) -> IngestProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     stdin=subprocess.DEVNULL)
        log.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code. Still running after ``timeout_s``: killed, and
        ``TimeoutError`` says so with the worker's output (what it was doing when the signal came)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return int(self.proc.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"runstream ingest was still running {timeout_s:g}s after SIGTERM (killed); "
                               f"its output:\n{self.output()}") from None

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> IngestProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
