"""Measurement children: one Python process per producer, peer tracker or probe.

Protocol (both sides here): the child prints ``READY`` once set up (connected,
warmed up), waits for ``GO`` on stdin, does its work and prints one JSON object
as its last stdout line. Separate processes keep each measurement's memory,
threads and imports (wandb, mlflow) out of the others', and let several
producers run on both cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["Child", "ChildFailed", "run_child", "ready_then_wait", "emit", "REPO"]

REPO = Path(__file__).resolve().parents[1]
"""The checkout the suite runs from (children import ``bench``, ``producers``... from it)."""


class ChildFailed(RuntimeError):
    """A child exited non-zero, said nothing parseable, or missed its deadline."""


class Child:
    """One child process speaking the READY / GO / JSON protocol."""

    def __init__(self, module: str, args: Sequence[str], *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.name = f"{module} {' '.join(args[:1])}"
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd or REPO, env=full_env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the child printed READY (``ChildFailed`` if it exits first)."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.strip() == "READY":
                return
        self.kill()
        raise ChildFailed(f"{self.name}: no READY ({self._stderr_tail()})")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 300.0) -> dict[str, Any]:
        """The child's JSON result (waits for it to exit)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ChildFailed(f"{self.name}: still running after {timeout:.0f}s") from None
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if self.proc.returncode != 0 or not lines:
            raise ChildFailed(f"{self.name}: exit {self.proc.returncode}: {err.strip()[-2000:]}")
        try:
            value: dict[str, Any] = json.loads(lines[-1])
        except ValueError:
            raise ChildFailed(f"{self.name}: last line is not JSON: {lines[-1][:200]!r}") from None
        return value

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "still running"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().strip()[-2000:]


def run_child(module: str, args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
              timeout: float = 300.0) -> dict[str, Any]:
    """Start a child, say GO as soon as it is ready, return its JSON result."""
    child = Child(module, args, cwd=cwd, env=env)
    try:
        child.wait_ready(timeout)
        child.go()
        return child.result(timeout)
    finally:
        child.kill()


def ready_then_wait() -> None:
    """Child side: announce readiness and wait for the parent's GO."""
    print("READY", flush=True)
    sys.stdin.readline()


def emit(result: Mapping[str, Any]) -> None:
    """Child side: the JSON result, as the last line."""
    print(json.dumps(dict(result)), flush=True)
