"""One producer process of the cluster fault tests: a known workload logged through the SDK.

``python -m tests.cluster.workload --kafka B --topic T --experiment E --writer W --runs R --names N --steps S``
starts R runs, logs N metrics per run for S steps (interleaved across runs, paced so
that a fault injected a few seconds in hits the stream in the middle), completes the
runs, waits until every event is acknowledged, prints the run ids as one JSON line
and exits 0. The values are a pure function of (writer, run, name, step): the test
recomputes them (:func:`expected_values`) and compares what readers see, exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["metric_names", "value_of", "expected_values"]


def metric_names(count: int) -> list[str]:
    """``m0``, ``m1``, ...: the names a workload logs, in first-logged order."""
    return [f"m{i}" for i in range(count)]


def value_of(writer: int, run: int, name: int, step: int) -> float:
    """The value logged at ``step`` (exactly representable, unique per point)."""
    return writer * 1_000_000 + run * 10_000 + name * 1_000 + step * 0.5


def expected_values(writer: int, run: int, names: int, steps: int) -> dict[str, list[float]]:
    """What ``Run.get_metrics()`` must answer for one run of one writer."""
    return {n: [value_of(writer, run, i, s) for s in range(steps)] for i, n in enumerate(metric_names(names))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.workload")
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--home", required=True, help="the SDK's home (outbox), one per process")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--names", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds the logging is spread over")
    args = parser.parse_args(argv)

    from producers import Experiment, Workspace

    # Outages of a broker must be ridden out by the producer itself, not the outbox: a long stall budget.
    ws = Workspace(kafka=args.kafka, topic=args.topic, home=args.home,
                   stall_timeout_s=120, flush_timeout_s=300)
    experiment = Experiment(ws, args.experiment)
    runs = [experiment.start_logging(display_name=f"w{args.writer}r{r}") for r in range(args.runs)]
    names = metric_names(args.names)
    chunks = 50
    started = time.monotonic()
    for step in range(args.steps):
        for r, run in enumerate(runs):
            for i, name in enumerate(names):
                run.log(name, value_of(args.writer, r, i, step), step=step)
        if step % max(1, args.steps // chunks) == 0:
            # Spread the steps evenly over --duration.
            due = started + args.duration * step / args.steps
            time.sleep(max(0.0, due - time.monotonic()))
    for run in runs:
        run.complete()
    if not ws.flush(timeout=300):
        print("flush timed out", file=sys.stderr)
        return 1
    print(json.dumps([run.id for run in runs]))
    ws.close(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
