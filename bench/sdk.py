"""SDK figures: ``run.log`` latency and calls/s with the Kafka transport active, and memory per buffered point.

Runner side: :func:`measure`. Child side (``python -m bench.sdk latency|rss``):
the loops themselves, each in a fresh process.

Keys: ``sdk_log_ns_median``, ``sdk_log_ns_p99``, ``sdk_log_calls_per_s``,
``sdk_rss_mb_per_million_buffered``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .child import emit, ready_then_wait, run_child

__all__ = ["measure"]


def measure(stack: Any, scratch: Path, *, trials: int, calls: int, rss_points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of every SDK figure, plus details (timer cost, p99.9, max)."""
    topic = stack.create_topic(stack.name("sdk"), 8)
    result = run_child("bench.sdk", ["latency", "--kafka", stack.kafka, "--topic", topic, "--calls", str(calls),
                                     "--trials", str(trials), "--home", str(scratch / "sdk-home")], timeout=300)
    rss = [run_child("bench.sdk", ["rss", "--points", str(rss_points)], timeout=120)["mb_per_million"]
           for _ in range(trials)]
    trials_out = {
        "sdk_log_ns_median": result["median_ns"],
        "sdk_log_ns_p99": result["p99_ns"],
        "sdk_log_calls_per_s": result["calls_per_s"],
        "sdk_rss_mb_per_million_buffered": rss,
    }
    details = {"timed_calls_per_trial": calls, "timer_ns": result["timer_ns"], "p999_ns": result["p999_ns"],
               "max_ns": result["max_ns"], "delivered": result["delivered"], "rss_points": rss_points}
    return trials_out, details


# -- child side ------------------------------------------------------------------------------------


def _latency(args: argparse.Namespace) -> dict[str, Any]:
    from producers import Experiment, Workspace

    ws = Workspace(kafka=args.kafka, topic=args.topic, home=args.home, install_signal_handlers=False)
    run = Experiment(ws, "bench-sdk").start_logging()
    run.log("loss", 0.0)
    ws.flush(30)
    ready_then_wait()
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(100_000):
        t0 = clock()
        overhead.append(clock() - t0)
    timer = statistics.median(overhead)
    for _ in range(100_000):  # warm-up: the first segments allocate, the emitter thread settles
        run.log("loss", 0.5)
    ws.flush(60)
    out: dict[str, list[float]] = {"median_ns": [], "p99_ns": [], "p999_ns": [], "max_ns": [], "calls_per_s": []}
    delivered = True
    log = run.log
    for _ in range(args.trials):
        samples = [0] * args.calls
        gc.disable()  # a collection pause is not the SDK's cost (the loop keeps nothing alive)
        try:
            for i in range(args.calls):
                t0 = clock()
                log("loss", 0.5)
                samples[i] = clock() - t0
        finally:
            gc.enable()
        samples.sort()
        n = len(samples)
        out["median_ns"].append(samples[n // 2] - timer)
        out["p99_ns"].append(samples[int(n * 0.99)] - timer)
        out["p999_ns"].append(samples[int(n * 0.999)] - timer)
        out["max_ns"].append(samples[-1] - timer)
        delivered &= ws.flush(120)
        # Calls/s: the same call in a plain loop, timed as a whole (the shape the peers are timed in).
        t0 = clock()
        for _ in range(args.calls):
            log("loss", 0.5)
        out["calls_per_s"].append(args.calls / ((clock() - t0) / 1e9))
        delivered &= ws.flush(120)
    run.complete()
    ws.close()
    return {**out, "timer_ns": timer, "delivered": delivered}


def _rss(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    from producers import Experiment, Workspace
    from producers.testing import InMemoryTransport

    transport = InMemoryTransport()
    ws = Workspace(transport=transport, install_signal_handlers=False, linger_ms=600_000,
                   max_buffer_bytes=1024 * 1024 * 1024)
    run = Experiment(ws, "bench").start_logging()
    run.log("loss", 0.0)
    ws.flush(10)
    transport.hold()  # nothing leaves: every point stays buffered in the SDK
    ready_then_wait()
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    log = run.log
    for _ in range(args.points):
        log("loss", 0.5)
    gc.collect()
    after = proc.memory_info().rss
    transport.release()
    ws.close(30)
    return {"mb_per_million": (after - before) / 1e6 * (1_000_000 / args.points), "points": args.points}


def _main(argv: list[str]) -> int:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="python -m bench.sdk")
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--kafka", required=True)
    lat.add_argument("--topic", required=True)
    lat.add_argument("--home", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-sdk-")))
    lat.add_argument("--calls", type=int, default=1_000_000)
    lat.add_argument("--trials", type=int, default=3)
    rss = sub.add_parser("rss")
    rss.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    emit(_latency(args) if args.what == "latency" else _rss(args))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
