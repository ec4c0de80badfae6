"""HyperDrive sweeps: what a trial costs the launcher, and how fast a policy stops a trial.

- ``sweep_launch_overhead_ms``: a sweep of 64 trivial trials (the script only
  attaches to its run), 8 at a time, from ``experiment.submit(hd)`` until
  ``wait_for_completion()`` returns; wall time / 64. A trivial trial's time is
  all overhead: starting the interpreter and the SDK, the child run's start and
  end events, the launcher noticing the end and starting the next.
- ``sweep_policy_decision_s``: one "good" trial logs 0.0 at once; five "bad"
  trials each log 1.0 once, seconds apart, under ``BanditPolicy(slack_amount=0.1)``
  minimizing; each bad trial writes ``time.time()`` right after its
  ``run.log`` and again in its SIGTERM handler. The figure is the median of
  handler time minus log time: the metric travelling to the store (Kafka,
  ``runstream ingest``, ClickHouse), the launcher's next read, its decision and
  the signal.

Both on the stack (Kafka + one ``runstream ingest`` + ClickHouse, as a sweep
runs against a cluster); the decision latency is also measured once on the
embedded default (spool + chDB) and reported in the details.
"""

from __future__ import annotations

import statistics
import textwrap
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from . import e2e

__all__ = ["measure", "TRIVIAL", "LATENCY"]

TRIVIAL = """
    from producers import Run
    Run.get_context()
"""

LATENCY = """
    import argparse, os, signal, sys, time
    from producers import Run

    parser = argparse.ArgumentParser()
    parser.add_argument("--role")
    parser.add_argument("--out")
    args = parser.parse_args()
    run = Run.get_context()

    def stopped(signum, frame):
        open(os.path.join(args.out, args.role + ".stopped"), "w").write(repr(time.time()))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stopped)
    if args.role == "good":
        run.log("m", 0.0)
    else:
        time.sleep(3.0 + 1.5 * int(args.role[3:]))
        run.log("m", 1.0)
        open(os.path.join(args.out, args.role + ".logged"), "w").write(repr(time.time()))
    time.sleep(300)
"""

_BAD = 5


def _workspace(stack: Any | None, topic: str | None, database: str | None, home: Path) -> Any:
    from producers import Workspace, WorkspaceSettings

    if stack is None:  # the embedded default, whatever RUNSTREAM_* the bench runs with
        return Workspace(settings=WorkspaceSettings.resolve({"home": home, "install_signal_handlers": False},
                                                            env={}))
    assert database is not None
    return Workspace(kafka=stack.kafka, clickhouse=stack.url(database), topic=topic, home=home,
                     install_signal_handlers=False)


def _launch_overhead(ws: Any, src: Path, trials: int, concurrent: int) -> tuple[float, dict[str, Any]]:
    from producers import Experiment, GridParameterSampling, HyperDriveConfig, ScriptRunConfig, choice

    hd = HyperDriveConfig(run_config=ScriptRunConfig(str(src), "trivial.py"),
                          hyperparameter_sampling=GridParameterSampling({"--i": choice(*range(trials))}),
                          primary_metric_name="x", primary_metric_goal="maximize", max_concurrent_runs=concurrent)
    experiment = Experiment(ws, f"bench-sweep-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    hd_run = experiment.submit(hd)
    details = hd_run.wait_for_completion()
    wall = time.monotonic() - started
    spans = []
    for child in hd_run.get_children():
        d = child.get_details()
        spans.append((datetime.fromisoformat(d["startTimeUtc"]).timestamp(),
                      datetime.fromisoformat(d["endTimeUtc"]).timestamp()))
    starts = sorted(s for s, _ in spans)
    ends = sorted(e for _, e in spans)
    # The k-th start (k >= concurrent) took the slot the (k - concurrent)-th end freed.
    gaps = [starts[k] - ends[k - concurrent] for k in range(concurrent, len(starts))]
    return wall / trials * 1000.0, {
        "status": details["status"], "trials": len(spans), "wall_s": wall,
        "trial_s_median": statistics.median(e - s for s, e in spans),
        "slot_refill_s_median": statistics.median(gaps) if gaps else None,
        "max_running": max(sum(1 for s, e in spans if s <= t < e) for t in starts),
    }


def _decision_latency(ws: Any, src: Path, out: Path) -> tuple[list[float], dict[str, Any]]:
    from producers import (
        BanditPolicy,
        Experiment,
        GridParameterSampling,
        HyperDriveConfig,
        ScriptRunConfig,
        choice,
    )

    out.mkdir(parents=True, exist_ok=True)
    roles = ["good"] + [f"bad{i}" for i in range(_BAD)]
    hd = HyperDriveConfig(run_config=ScriptRunConfig(str(src), "latency.py", arguments=["--out", str(out)]),
                          hyperparameter_sampling=GridParameterSampling({"--role": choice(*roles)}),
                          policy=BanditPolicy(slack_amount=0.1), primary_metric_name="m",
                          primary_metric_goal="minimize", max_concurrent_runs=len(roles))
    hd_run = Experiment(ws, f"bench-policy-{uuid.uuid4().hex[:8]}").submit(hd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("bad*.stopped"))) < _BAD:
        time.sleep(0.2)
    hd_run.cancel()
    samples = []
    for i in range(_BAD):
        logged, stopped = out / f"bad{i}.logged", out / f"bad{i}.stopped"
        if logged.exists() and stopped.exists():
            samples.append(float(stopped.read_text()) - float(logged.read_text()))
    return samples, {"samples_s": samples, "stopped": len(samples), "of": _BAD}


def measure(stack: Any, scratch: Path, *, trials: int, sweep_trials: int = 64,
            concurrent: int = 8) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Both figures over ``trials`` repetitions on the stack, plus one embedded decision-latency run."""
    src = scratch / "sweep-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "trivial.py").write_text(textwrap.dedent(TRIVIAL))
    (src / "latency.py").write_text(textwrap.dedent(LATENCY))
    topic = stack.create_topic(stack.name("sweep"), 4)
    database = stack.name("sweep")
    ingest = e2e.Ingest(stack=stack, topic=topic, database=database, home=scratch / "sweep-ingest-home")
    figures: dict[str, list[float]] = {"sweep_launch_overhead_ms": [], "sweep_policy_decision_s": []}
    details: dict[str, Any] = {"launch": [], "decision": [], "sweep_trials": sweep_trials, "concurrent": concurrent}
    ingest.start()
    ws = _workspace(stack, topic, database, scratch / "sweep-home")
    try:
        for n in range(trials):
            per_trial, d = _launch_overhead(ws, src, sweep_trials, concurrent)
            figures["sweep_launch_overhead_ms"].append(per_trial)
            details["launch"].append(d)
            samples, d = _decision_latency(ws, src, scratch / f"sweep-latency-{n}")
            if samples:
                figures["sweep_policy_decision_s"].append(statistics.median(samples))
            details["decision"].append(d)
    finally:
        ws.close(10)
        ingest.stop()
    embedded = _workspace(None, None, None, scratch / "sweep-embedded-home")
    try:
        samples, d = _decision_latency(embedded, src, scratch / "sweep-latency-embedded")
        details["embedded_decision"] = {**d, "median_s": statistics.median(samples) if samples else None}
    finally:
        embedded.close(10)
    return figures, details
