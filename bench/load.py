"""The load generator: a training process logging with the SDK (a child of the e2e and raw measurements).

    python -m bench.load burst --kafka K --topic T --experiment E --points N
    python -m bench.load paced --kafka K --topic T --experiment E --rate 100000 --seconds 8
    python -m bench.load messages --points N --out FILE      # the SDK's exact bytes, for bare kafka-python

``burst`` logs N points as fast as it can (5 metric names in turn, like a
training step logging 5 scalars) and flushes. ``paced`` logs ``rate`` points
per second in 10 ms ticks and, every 50 ms, a ``sentinel`` point whose value
is ``time.time()`` at the call (the latency probe). ``messages`` runs the burst
loop against an in-memory transport and pickles what the SDK would have sent.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .child import emit, ready_then_wait

__all__ = ["METRICS", "SENTINEL", "SENTINEL_EVERY_S"]

METRICS = tuple(f"metric_{i}" for i in range(5))
"""The names a burst producer cycles through."""

SENTINEL = "sentinel"
SENTINEL_EVERY_S = 0.05
_TICK_S = 0.01


def _burst_loop(run: Any, points: int) -> None:
    log = run.log
    names = METRICS
    value = 0.5
    for _ in range(points // len(names)):
        for name in names:
            log(name, value)
        value += 1e-6


def _workspace(args: argparse.Namespace) -> Any:
    from producers import Workspace

    home = Path(tempfile.mkdtemp(prefix="bench-load-", dir=args.home))
    extra = {} if args.stall_timeout is None else {"stall_timeout_s": args.stall_timeout}
    return Workspace(kafka=args.kafka, topic=args.topic, home=home, install_signal_handlers=False, **extra)


def _burst(args: argparse.Namespace) -> dict[str, Any]:
    from producers import Experiment

    ws = _workspace(args)
    run = Experiment(ws, args.experiment).start_logging()
    run.log("warmup", 0.0)
    ws.flush(60)
    ready_then_wait()
    cpu0, main0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    _burst_loop(run, args.points)
    t1 = time.perf_counter()
    ok = ws.flush(300)
    t2 = time.perf_counter()
    cpu, main = time.process_time() - cpu0, time.thread_time() - main0
    run.complete()
    ws.close(60)
    # The calling thread runs run.log (and sleeps in flush); every other thread of the process is the
    # SDK's background work: the emitter thread (encode) and kafka-python's sender (compress, send).
    return {"log_s": t1 - t0, "flush_s": t2 - t1, "delivered": ok, "cpu_s": cpu, "log_thread_cpu_s": main,
            "background_cpu_s": cpu - main, "points": args.points // len(METRICS) * len(METRICS)}


def _paced(args: argparse.Namespace) -> dict[str, Any]:
    from producers import Experiment

    ws = _workspace(args)
    run = Experiment(ws, args.experiment).start_logging()
    run.log("warmup", 0.0)
    ws.flush(60)
    ready_then_wait()
    log = run.log
    per_tick = max(1, round(args.rate * _TICK_S))
    ticks = round(args.seconds / _TICK_S)
    sentinel_every = max(1, round(SENTINEL_EVERY_S / _TICK_S))
    names = METRICS
    start = time.perf_counter()
    late_ticks = 0
    sentinels = 0
    points = 0
    for tick in range(ticks):
        for i in range(per_tick):
            log(names[i % 5], 0.5)
        points += per_tick
        if tick % sentinel_every == 0:
            log(SENTINEL, time.time())
            sentinels += 1
        due = start + (tick + 1) * _TICK_S
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            late_ticks += 1
    elapsed = time.perf_counter() - start
    ok = ws.flush(60)
    run.complete()
    ws.close(60)
    return {"points": points, "sentinels": sentinels, "elapsed_s": elapsed, "rate": points / elapsed,
            "late_ticks": late_ticks, "ticks": ticks, "delivered": ok}


def _messages(args: argparse.Namespace) -> dict[str, Any]:
    from producers import Experiment, Workspace
    from producers.testing import InMemoryTransport

    transport = InMemoryTransport()
    ws = Workspace(transport=transport, install_signal_handlers=False)
    run = Experiment(ws, args.experiment).start_logging()
    run.log("warmup", 0.0)
    ready_then_wait()
    _burst_loop(run, args.points)
    run.complete()
    ws.close(60)
    messages = [(m.key, m.value) for m in transport.messages]
    with open(args.out, "wb") as f:
        pickle.dump(messages, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {"messages": len(messages), "bytes": sum(len(v) + len(k) for k, v in messages)}


def _main(argv: list[str]) -> int:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("mode", choices=["burst", "paced", "messages"])
    parser.add_argument("--kafka")
    parser.add_argument("--topic")
    parser.add_argument("--experiment", default="bench")
    parser.add_argument("--home", default=os.environ.get("TMPDIR"))
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--stall-timeout", type=float, default=None,
                        help="the SDK's stall_timeout_s (default: the SDK's own)")
    args = parser.parse_args(argv)
    if args.mode == "messages":
        emit(_messages(args))
    else:
        emit(_burst(args) if args.mode == "burst" else _paced(args))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
