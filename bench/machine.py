"""What the numbers were measured on: CPU, memory, OS, versions, and how busy the machine was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

from .child import REPO

__all__ = ["describe", "load_snapshot", "busy_processes"]

_PACKAGES = ("kafka-python", "clickhouse-driver", "fastavro", "wandb", "mlflow", "psutil")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def describe(stack: Any) -> dict[str, Any]:
    """Machine and software facts for ``latest.json``."""
    import psutil

    try:
        server = stack.server_version()
    except Exception:
        server = None
    kafka_jars = sorted((REPO / "deploy" / "local" / ".cache" / "kafka-libs").glob("kafka_*.jar"))
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "clickhouse_server": server,
        "kafka_broker": kafka_jars[0].stem.split("-", 1)[1] if kafka_jars else None,
        "git_commit": _git_commit(),
    }


def busy_processes(min_cpu_percent: float = 20.0) -> list[str]:
    """Other processes using a noticeable share of a CPU right now (sampled over 0.5 s)."""
    import psutil

    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    psutil.cpu_percent(0.5)
    out = []
    me = os.getpid()
    for p in procs:
        try:
            pct = p.cpu_percent(None)
            if p.pid != me and pct >= min_cpu_percent:
                cmd = " ".join(p.info.get("cmdline") or [p.info.get("name") or "?"])[:120]
                out.append(f"{pct:.0f}% {cmd}")
        except psutil.Error:
            pass
    return out


def load_snapshot() -> dict[str, Any]:
    """Load averages and the busy processes at this moment."""
    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "busy": busy_processes()}
