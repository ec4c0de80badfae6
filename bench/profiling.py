"""Profiles for figures that miss their goal: cProfile top entries and where the CPU went.

No sampling profiler is needed: ``python -m cProfile`` runs the real
``runstream ingest`` (``--once``) over a topic pre-filled with the SDK's bytes,
and :func:`top_entries` keeps the functions with the most own time.
"""

from __future__ import annotations

import io
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from .child import REPO, Child

__all__ = ["top_entries", "profile_ingest", "cpu_table"]


def top_entries(stats_file: Path, n: int = 18, sort: str = "tottime") -> str:
    """The ``n`` top functions of a cProfile stats file, as pstats prints them (paths shortened)."""
    out = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=out)
    stats.sort_stats(sort).print_stats(n)
    text = out.getvalue()
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls")), 0)
    head = [ln.strip() for ln in lines[:start] if "function calls" in ln]
    body = [ln.replace(str(REPO) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")
            for ln in lines[start:] if ln.strip()]
    return "\n".join(head + body) + "\n"


def profile_ingest(stack: Any, files: list[Path], scratch: Path, *, points: int) -> dict[str, Any]:
    """cProfile of ``runstream ingest --once`` consuming the SDK's messages for ``points`` points."""
    topic = stack.create_topic(stack.name("prof"), 8)
    producers = [Child("bench.raw_kafka", ["produce", "--kafka", stack.kafka, "--topic", topic, "--file", str(f)])
                 for f in files]
    try:
        for p in producers:
            p.wait_ready()
        for p in producers:
            p.go()
        for p in producers:
            p.result()
    finally:
        for p in producers:
            p.kill()
    stats_file = scratch / "ingest.prof"
    database = stack.name("prof")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(stats_file), "-m", "runstream", "-q", "ingest", "--once",
         "--idle", "1", "--kafka", stack.kafka, "--clickhouse", stack.url(database), "--topic", topic, "--group", topic,
         "--dlq-topic", topic + ".dlq", "--home", str(scratch / "prof-home"), "--metrics-port", "0"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=300,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0 - 1.0  # the idle second is not ingest time
    stats = pstats.Stats(str(stats_file))
    own = sorted(((v[2], f) for f, v in stats.stats.items()), reverse=True)[:3]  # type: ignore[attr-defined]
    heaviest = [{"function": f"{Path(f[0]).name}:{f[1]}({f[2]})", "tottime_s": t,
                 "share": t / stats.total_tt if stats.total_tt else 0.0} for t, f in own]
    return {"heaviest": heaviest, "elapsed_s": elapsed, "points": points, "profiled_points_per_s": points / elapsed,
            "total_tt_s": stats.total_tt, "top_tottime": top_entries(stats_file, sort="tottime"),
            "top_cumtime": top_entries(stats_file, n=14, sort="cumulative")}


def cpu_table(trials: list[Mapping[str, Any]], cores: int) -> str:
    """Where the CPU went during the e2e throughput trials (CPU seconds per process and share of the capacity)."""
    names = ["producers", "ingest", "kafka", "clickhouse"]
    lines = [f"{'trial':>5} {'wall s':>7} {'capacity':>9}  " + "  ".join(f"{n:>14}" for n in names)
             + f"  {'idle':>8}"]
    for i, t in enumerate(trials):
        wall = float(t["elapsed_s"])
        capacity = wall * cores
        used = 0.0
        cells = []
        for n in names:
            v = float(t["cpu_s"].get(n, float("nan")))
            used += v if v == v else 0.0
            cells.append(f"{v:6.1f}s {100 * v / capacity:4.0f}%")
        lines.append(f"{i:>5} {wall:7.2f} {capacity:8.1f}s  " + "  ".join(f"{c:>14}" for c in cells)
                     + f"  {max(0.0, capacity - used):7.1f}s")
    return "\n".join(lines) + "\n"
