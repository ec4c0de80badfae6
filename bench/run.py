"""The benchmark runner: every measurement on the real local stack, then latest.json and BENCHMARKS.md.

    python -m bench [--trials 3] [--out bench/results/latest.json] [--markdown BENCHMARKS.md] [--note TEXT]

Needs the stack answering at ``RUNSTREAM_KAFKA`` / ``RUNSTREAM_CLICKHOUSE``
(``make bench`` starts it when it is down, and stops it again afterwards).
Every topic and database made here is ``rs_bench_<tag>_*`` and dropped at the
end; scratch files go to ``bench/.scratch/<tag>`` (git-ignored, removed).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import (cluster, codec, e2e, first_assignment, machine, mlflow_server, peers, profiling, queries,
               raw_clickhouse, raw_kafka, sdk, storage, sweeps, ui)
from .child import REPO
from .results import FIGURES, build_document, missed_goals, render_markdown, summarize
from .stack import Stack, answers, from_env

__all__ = ["main", "Plan"]

log = logging.getLogger("bench")

_GOAL_OF = {f.key: f for f in FIGURES}


class Plan:
    """How much work each measurement does (sized to finish within 10 minutes on 2 cores)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials
        self.sdk_calls = 500_000
        self.rss_points = 1_000_000
        self.wandb_calls = 10_000
        self.mlflow_calls = 200
        self.mlflow_batches = 20
        self.mlflow_history_points = 100_000
        self.codec_points = 1_000_000
        self.producers = 2
        self.points_per_producer = 1_500_000
        self.partitions = 8
        self.latency_rate = 100_000.0
        self.latency_seconds = 8.0
        self.query_repeats = 10
        self.cluster_points_per_producer = 500_000
        self.cluster_failover_trials = min(trials, 3)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _mlflow_server_analysis(d: dict[str, Any]) -> str:
    """Where a ``log_batch`` goes, from the same client against both servers and against the null server."""
    b = d["bound"]
    ms = b["ms_per_batch"]
    return (f"The MLflow client alone (the same child against a server that answers without doing anything) logs "
            f"{b['client_alone_points_per_s']:,.0f} points/s, {ms['client_alone']:.0f} ms per 1,000-metric batch: "
            f"encoding the batch (protobuf, a dict, indented JSON) and the HTTP call. Against mlflow server a batch "
            f"takes {ms['mlflow']:.0f} ms, so no server can beat it by more than {b['ratio_bound']:.1f}x with this "
            f"client in this run. runstream server took {ms['runstream']:.0f} ms per batch, "
            f"{b['runstream_server_ms_per_batch']:.0f} ms more than the client alone.")


def _e2e_analysis(doc_trials: dict[str, list[float]], details: dict[str, Any], cores: int) -> str:
    """What the CPU split and the ingest profile say, stated from the numbers (no fixed claims)."""
    trials = details["e2e"]["throughput"]["trials"]
    cpu = {k: statistics.median(float(t["cpu_s"][k]) for t in trials) for k in ("producers", "ingest", "kafka",
                                                                                 "clickhouse")}
    wall = statistics.median(float(t["elapsed_s"]) for t in trials)
    capacity = wall * cores
    points = trials[0]["points"]
    e2e_rate = statistics.median(doc_trials["e2e_points_per_s"])
    raw_ch = statistics.median(doc_trials["raw_clickhouse_points_per_s"])
    raw_k = statistics.median(doc_trials["raw_kafka_points_per_s"])
    names = {"producers": "the SDK producers", "ingest": "`runstream ingest`", "clickhouse": "the ClickHouse server",
             "kafka": "the Kafka broker"}
    ranked = sorted(cpu, key=lambda k: -cpu[k])
    used = sum(cpu.values())
    parts = [
        f"The machine has {cores} cores: a median trial ({wall:.1f} s) has {capacity:.1f} CPU-seconds. "
        + "Median CPU-seconds used per trial: "
        + ", ".join(f"{names[k]} {cpu[k]:.1f} s ({cpu[k] / capacity:.0%})" for k in ranked)
        + f"; {used / capacity:.0%} of the capacity in all (the rest: other processes and waiting). "
        + "Points per CPU-second of each: "
        + ", ".join(f"{names[k]} {points / cpu[k]:,.0f}" for k in ranked if cpu[k] > 0) + ".",
        f"The ceilings, each measured with the machine to itself: bare clickhouse-driver inserts "
        f"{raw_ch:,.0f} points/s, bare kafka-python {raw_k:,.0f} points/s. End to end, the same inserts share the "
        f"{cores} cores with the producers, the broker and ingest, and reach {e2e_rate:,.0f} points/s, "
        f"{e2e_rate / min(raw_ch, raw_k):.0%} of the lower ceiling. "
        + ("500,000 points/s is above what the ClickHouse server takes from one bare client on this machine, "
           "so no change to runstream's code can reach the goal here; " if min(raw_ch, raw_k) < 500_000 else
           "Each ceiling alone allows the goal; end to end, every stage shares the same cores; ")
        + f"{names[ranked[0]]} is the largest CPU consumer.",
        _cpu_budget(cpu, points, cores, names, ranked),
    ]
    prof = details.get("ingest_profile", {})
    if prof:
        heavy = "; ".join(f"`{h['function']}` {h['tottime_s']:.2f} s ({h['share']:.0%})" for h in prof["heaviest"])
        parts.append(
            f"Inside ingest (cProfile of `runstream ingest --once` over the same messages, {prof['points']:,} points, "
            f"{prof['total_tt_s']:.1f} s under the profiler), the most own time goes to: {heavy}. "
            "Time spent waiting for the server or the broker (socket reads, lock waits) counts here as well.")
    return "\n\n".join(parts)


def _cpu_budget(cpu: dict[str, float], points: int, cores: int, names: dict[str, str], ranked: list[str]) -> str:
    """The bound the per-point CPU cost of all stages puts on the rate, with every core busy."""
    per_point_us = {k: cpu[k] / points * 1e6 for k in ranked}
    total_us = sum(per_point_us.values())
    bound = cores / (total_us / 1e6) if total_us > 0 else float("inf")
    goal_us = cores / 500_000 * 1e6
    return (f"CPU budget: one point costs {total_us:.2f} µs of CPU across the stages ("
            + ", ".join(f"{names[k]} {per_point_us[k]:.2f} µs" for k in ranked)
            + f"). With every one of the {cores} cores busy all the time, that allows at most {bound:,.0f} points/s"
            + (f"; 500,000 points/s on {cores} cores needs the whole pipeline under {goal_us:.1f} µs a point, "
               "so the goal needs the stages themselves to get cheaper (the stage table below says which "
               "costs most), not more overlap between them." if bound < 500_000 else
               "; the goal is within the budget, so the loss is in waiting (stages not overlapping)."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--note", action="append", default=[], help="a note to publish with the results")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling missed goals")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stack = from_env()
    if not answers(stack.kafka, stack.clickhouse):
        _say(f"the stack is not answering (Kafka {stack.kafka}, ClickHouse {stack.clickhouse}); run `make bench`")
        return 2
    plan = Plan(args.trials)
    scratch = REPO / "bench" / ".scratch" / stack.tag
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = machine.load_snapshot()
    info = machine.describe(stack)
    trials: dict[str, list[float]] = {}
    details: dict[str, Any] = {"plan": vars(plan)}
    profiles: dict[str, Any] = {}
    try:
        _say("codec")
        t, d = codec.measure(trials=plan.trials, points=plan.codec_points)
        trials.update(t)
        details["codec"] = d
        _say("SDK: run.log latency and calls/s (Kafka transport), buffered memory")
        t, d = sdk.measure(stack, scratch, trials=plan.trials, calls=plan.sdk_calls, rss_points=plan.rss_points)
        trials.update(t)
        details["sdk"] = d
        _say("peers: wandb (offline), mlflow (default local store)")
        p = peers.measure(scratch, trials=plan.trials, wandb_calls=plan.wandb_calls, mlflow_calls=plan.mlflow_calls)
        ours = 1.0 / statistics.median(trials["sdk_log_calls_per_s"])
        trials["vs_wandb_log_speedup"] = [s / ours for s in p["wandb"]["s_per_call"]]
        trials["vs_mlflow_log_speedup"] = [s / ours for s in p["mlflow"]["s_per_call"]]
        details["peers"] = {**p, "runstream_s_per_call": ours}
        _say("MLflow client: runstream server vs mlflow server (sqlite)")
        t, d = mlflow_server.measure(scratch, trials=plan.trials, batches=plan.mlflow_batches,
                                     history_points=plan.mlflow_history_points)
        trials.update(t)
        details["mlflow_server"] = d
        _say("raw ceilings: bare kafka-python, bare clickhouse-driver")
        files = raw_kafka.prepare_messages(scratch, plan.producers, plan.points_per_producer)
        t, d = raw_kafka.measure(stack, files, trials=plan.trials, points_per_producer=plan.points_per_producer,
                                 partitions=plan.partitions)
        trials.update(t)
        details["raw_kafka"] = d
        t, d = raw_clickhouse.measure(stack, files, trials=plan.trials)
        trials.update(t)
        details["raw_clickhouse"] = d
        _say("end to end: throughput, then latency at a fixed load")
        topic = stack.create_topic(stack.name("e2e"), plan.partitions)
        ingest = e2e.Ingest(stack=stack, topic=topic, database=stack.name("e2e"), home=scratch / "ingest-home")
        try:
            ingest.start()
            t, d_tp = e2e.throughput(stack, ingest, scratch, trials=plan.trials, producers=plan.producers,
                                     points=plan.points_per_producer)
            trials.update(t)
            t, details["storage"] = storage.measure(stack, ingest.database)
            trials.update(t)
            t, d_lat = e2e.latency(stack, ingest, scratch, trials=plan.trials, rate=plan.latency_rate,
                                   seconds=plan.latency_seconds)
            trials.update(t)
        finally:
            ingest.stop()
        details["e2e"] = {"throughput": d_tp, "latency": d_lat}
        details["cpu_per_point"] = {"now": e2e.stage_costs(d_tp["trials"]), "before": e2e.BEFORE_US_PER_POINT}
        ceiling = min(statistics.median(trials["raw_kafka_points_per_s"]),
                      statistics.median(trials["raw_clickhouse_points_per_s"]))
        trials["pipeline_efficiency"] = [r / ceiling for r in trials["e2e_points_per_s"]]
        _say("a new ingest worker: start to first assigned partition")
        t, d = first_assignment.measure(stack, scratch, trials=plan.trials, partitions=plan.partitions)
        trials.update(t)
        details["first_assignment"] = d
        _say("queries on 10M points")
        t, d = queries.measure(stack, repeats=plan.query_repeats)
        trials.update(t)
        details["queries"] = d
        _say("web UI in headless Chromium: a 1M-point curve, 1,000 runs, 100 runs overlaid")
        t, d = ui.measure(stack, trials=plan.trials)
        trials.update(t)
        details["ui"] = d
        _say("sweeps: launch overhead per trial, policy decision latency")
        t, d = sweeps.measure(stack, scratch, trials=plan.trials)
        trials.update(t)
        details["sweeps"] = d
        _say("cluster (deploy/local/cluster.sh, started if down): throughput, then broker failover")
        t, d = cluster.measure(scratch, tag=stack.tag, trials=plan.trials, producers=plan.producers,
                               points=plan.cluster_points_per_producer, partitions=plan.partitions,
                               failover_trials=plan.cluster_failover_trials)
        trials.update(t)
        details["cluster"] = d
        summaries = {k: summarize(v) for k, v in trials.items()}
        medians = {k: s.median for k, s in summaries.items()}
        missed = missed_goals(medians)
        if missed and not args.no_profile:
            _say(f"profiling missed goals: {', '.join(missed)}")
            cores = info["logical_cpus"] or 2
            if {"e2e_points_per_s", "pipeline_efficiency", "producer_cpu_us_per_point", "ingest_cpu_us_per_point",
                    "clickhouse_cpu_us_per_point"} & set(missed):
                details["ingest_profile"] = profiling.profile_ingest(stack, files, scratch,
                                                                     points=plan.producers * plan.points_per_producer)
                prof = details["ingest_profile"]
                entry = {
                    "analysis": _e2e_analysis(trials, details, cores),
                    "blocks": [
                        {"title": "CPU seconds per process during each e2e throughput trial (share of the "
                                  f"{cores}-core capacity)", "text": profiling.cpu_table(d_tp["trials"], cores)},
                        {"title": "cProfile of `runstream ingest --once`, top functions by own time",
                         "text": prof["top_tottime"]},
                        {"title": "The same profile by cumulative time", "text": prof["top_cumtime"]},
                    ],
                }
                for key in ("e2e_points_per_s", "pipeline_efficiency", "producer_cpu_us_per_point",
                            "ingest_cpu_us_per_point", "clickhouse_cpu_us_per_point"):
                    if key in missed:
                        profiles[key] = entry
            if "vs_mlflow_server_log_batch_speedup" in missed:
                profiles["vs_mlflow_server_log_batch_speedup"] = {
                    "analysis": _mlflow_server_analysis(details["mlflow_server"]), "blocks": []}
            for key in missed:
                profiles.setdefault(key, {"analysis": "No automatic profile exists for this figure; see details in "
                                                      "latest.json.", "blocks": []})
    finally:
        stack.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    duration = time.monotonic() - started
    load_after = machine.load_snapshot()
    busy = sorted(set(load_before["busy"]) | set(load_after["busy"]))
    load = {"before": load_before, "after": load_after,
            "note": f"load average {load_before['loadavg'][0]:.2f} at the start and {load_after['loadavg'][0]:.2f} "
                    f"at the end (1-minute); "
                    + (f"other busy processes seen: {'; '.join(busy)}." if busy else
                       "no other process was using a noticeable share of a CPU at either moment.")}
    details["notes"] = list(args.note)
    details["choices"] = (REPO / "bench" / "choices.md").read_text(encoding="utf-8")
    doc = build_document(summaries, machine=info, load=load, details=details, profiles=profiles,
                         generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                         duration_s=duration)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    args.markdown.write_text(render_markdown(doc), encoding="utf-8")
    _say(f"done in {duration:.0f} s: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}, "
         f"{args.markdown.name}")
    for f in FIGURES:
        s = summaries.get(f.key)
        if s is not None:
            met = "" if f.goal is None else ("  [met]" if f.key not in doc.get("missing", []) and
                                             f.key not in missed_goals(doc) else "  [MISSED]")
            print(f"  {f.key:34} {s.median:>16,.3f}{met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
