"""How soon a new ingest worker takes its share of the topic.

Key: ``ingest_first_assignment_s``. Each trial, on a fresh 8-partition topic
and consumer group: one ``runstream ingest`` process is started and left
running (it owns every partition), then a second one is started; the figure is
the time from spawning the second process to its own log line announcing its
first non-empty partition assignment. That covers the process start, the store
migrations, topic checks, joining the group, and the rebalance the join causes
(the first worker must notice it and rejoin). The first worker's own time
(alone in its group, no rebalance), the new worker's CPU time until its
assignment and the load average are kept in the details: on a shared machine
the wall time grows with the load, the CPU time does not.

Times are read from the workers' log lines (their timestamps, this machine's
clock) against the wall-clock time taken just before each spawn.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .child import REPO

__all__ = ["measure", "first_assignment_at"]

_ASSIGNED = "partitions assigned: ["


def first_assignment_at(log_text: str) -> float | None:
    """Epoch seconds of the first log line announcing a non-empty partition assignment, else None."""
    for line in log_text.splitlines():
        at = line.find(_ASSIGNED)
        if at < 0 or line[at + len(_ASSIGNED):].startswith("]"):
            continue
        try:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
    return None


class _Worker:
    def __init__(self, stack: Any, topic: str, database: str, log_path: Path) -> None:
        self.log_path = log_path
        self.cpu_s = float("nan")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        env["PYTHONPATH"] = str(REPO)
        self.spawned_at = time.time()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runstream", "ingest", "--kafka", stack.kafka,
                 "--clickhouse", stack.url(database), "--topic", topic, "--group", topic,
                 "--dlq-topic", topic + ".dlq", "--home", str(log_path.with_suffix("")), "--metrics-port", "0"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def seconds_to_first_assignment(self, timeout_s: float = 120.0) -> float:
        import psutil

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runstream ingest exited {self.proc.returncode}; see {self.log_path}")
            cpu = psutil.Process(self.proc.pid).cpu_times()
            at = first_assignment_at(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if at is not None:
                self.cpu_s = cpu.user + cpu.system  # sampled just before the line was seen: within 50 ms
                return at - self.spawned_at
            time.sleep(0.05)
        raise RuntimeError(f"no partition assigned within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def measure(stack: Any, scratch: Path, *, trials: int, partitions: int = 8) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of a second worker's start-to-first-assignment time (see the module docstring)."""
    joining: list[float] = []
    joining_cpu: list[float] = []
    alone: list[float] = []
    load = [os.getloadavg()[0]]
    for t in range(trials):
        topic = stack.create_topic(stack.name(f"assign{t}"), partitions)
        database = stack.name(f"assign{t}")
        first = _Worker(stack, topic, database, scratch / f"assign{t}-first.log")
        second: _Worker | None = None
        try:
            alone.append(first.seconds_to_first_assignment())
            time.sleep(1.0)  # the first worker settles into its poll loop
            second = _Worker(stack, topic, database, scratch / f"assign{t}-second.log")
            joining.append(second.seconds_to_first_assignment())
            joining_cpu.append(second.cpu_s)
        finally:
            for worker in (second, first):
                if worker is not None:
                    worker.stop()
    load.append(os.getloadavg()[0])
    return ({"ingest_first_assignment_s": joining},
            {"second_worker_s": joining, "second_worker_cpu_s": joining_cpu, "first_worker_alone_s": alone,
             "first_worker_alone_median_s": statistics.median(alone), "partitions": partitions,
             "loadavg_1m_before_after": load,
             "note": "wall time grows with the machine's load; cpu_s is the new worker's own CPU time until then"})
