"""The benchmark's results: figures and goals, trial statistics, ``latest.json`` and ``BENCHMARKS.md``.

Pure logic only (no broker, no server, no clock): the runner measures, this
module summarises and renders, and the unit tests pin both.

The JSON's top level holds every key of :data:`KEYS` as a plain number (the
median over trials): those names are part of runstream's interface (issue 8).
Everything else lives under ``machine``, ``load``, ``figures`` (median, min,
max and every trial, unit, goal, met), ``details`` and ``profiles``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

__all__ = [
    "FORMAT",
    "Figure",
    "FIGURES",
    "KEYS",
    "Summary",
    "summarize",
    "goal_met",
    "build_document",
    "missed_goals",
    "render_markdown",
    "format_value",
]

FORMAT = 1
"""Version of the ``latest.json`` layout."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """One published figure: its JSON key, unit, goal (if any) and how it is measured."""

    key: str
    label: str
    unit: str
    method: str
    goal: float | None = None
    direction: Literal["min", "max"] = "max"
    """``max``: bigger is better, the goal is a floor; ``min``: smaller is better, the goal is a ceiling."""

    def goal_text(self) -> str:
        """``<= 2,000 ns`` / ``>= 10x``..., or an em dash when the issue sets no goal."""
        if self.goal is None:
            return "—"
        sign = ">=" if self.direction == "max" else "<="
        return f"{sign} {format_value(self.goal, self.unit)}"


FIGURES: tuple[Figure, ...] = (
    Figure(key="sdk_log_ns_median", label="`run.log(name, float)` median", unit="ns", goal=600, direction="min",
           method="Each call timed alone with `perf_counter_ns` (the timer's own median cost subtracted), "
                  "Kafka transport active (real broker, emitter thread sending), GC off during the loop."),
    Figure(key="sdk_log_ns_p99", label="`run.log` p99", unit="ns", direction="min",
           method="Same samples as the median."),
    Figure(key="sdk_log_calls_per_s", label="`run.log` calls/s, one thread", unit="calls/s",
           method="A tight loop of `run.log('loss', 0.5)` timed as a whole, Kafka transport active."),
    Figure(key="vs_wandb_log_speedup", label="vs wandb `run.log({...})`", unit="x", goal=10,
           method="wandb in offline mode, `run.log({'loss': 0.5})` in the same loop shape; ratio of the mean time "
                  "per call, wandb / runstream (runstream's time: the calls/s loop)."),
    Figure(key="vs_mlflow_log_speedup", label="vs mlflow `log_metric`", unit="x", goal=100,
           method="`mlflow.log_metric('loss', 0.5, step=i)` to MLflow's default local store (sqlite `mlflow.db` "
                  "in the working directory), a bounded loop; ratio of mean time per call, mlflow / runstream."),
    Figure(key="vs_mlflow_server_log_batch_speedup", label="vs `mlflow server`, MLflow client `log_batch`",
           unit="x", goal=10,
           method="The same MLflow client child logs the same `log_batch` calls of 1,000 metrics (10 names x 100 "
                  "steps) to `runstream server` (embedded default: it owns a fresh home, spool + chDB) and to "
                  "`mlflow server` (its sqlite store, 4 workers), running side by side; each trial logs to both in turn "
                  "(the order rotating), and its ratio of points/s compares neighbours in time. The client itself "
                  "spends tens of ms encoding each batch, which bounds the ratio: the same child, in the same trials, "
                  "also logs to a null server (answers, stores nothing), and its ratio is the bound "
                  "(details `mlflow_server.bound`, and the analysis when the goal is missed)."),
    Figure(key="mlflow_get_history_100k_ms", label="MLflow `get_metric_history`, 100k points, runstream server",
           unit="ms", direction="min",
           method="`MlflowClient.get_metric_history` of one metric of 100,000 points (4 pages of 25,000) from "
                  "`runstream server`, client parsing included."),
    Figure(key="mlflow_server_get_history_100k_ms", label="The same from `mlflow server` (sqlite)", unit="ms",
           direction="min", method="Same client call and data against `mlflow server`."),
    Figure(key="codec_points_per_s", label="Avro codec, scalar batches", unit="points/s", goal=10_000_000,
           method="ScalarBatch events of 16,384 points (the SDK's batch size) from the SDK's columnar buffer to "
                  "packed bytes (`schemas.encode`), then to ingest's numpy columns (`schemas.decode`, "
                  "`consumers.columns.scalar_columns`); points / (encode + decode time), one thread."),
    Figure(key="wire_bytes_per_point", label="Scalar point on the wire (lz4)", unit="B", direction="min",
           method="The codec figure's messages, each compressed with lz4 as the SDK's Kafka producer sends them; "
                  "bytes / points (the uncompressed size is in the details)."),
    Figure(key="e2e_points_per_s", label="End to end, sustained", unit="points/s", goal=500_000,
           method="Producer processes log with the SDK (Kafka transport) as fast as they can; one "
                  "`runstream ingest` process writes into the ClickHouse server; the clock runs from the start "
                  "signal until ingest's written-points counter (read from its Prometheus endpoint every 50 ms) "
                  "has grown by every point; the table is not scanned meanwhile (one `count()` checks afterwards)."),
    Figure(key="producer_cpu_us_per_point", label="CPU per point: SDK background threads", unit="µs",
           goal=0.5, direction="min",
           method="During the e2e throughput trials: each producer's process CPU minus its `run.log` thread's "
                  "(what is left: the emitter's encode, kafka-python's compress and send), over the points."),
    Figure(key="ingest_cpu_us_per_point", label="CPU per point: `runstream ingest`", unit="µs", goal=0.5,
           direction="min", method="During the e2e throughput trials: the ingest process's CPU over the points."),
    Figure(key="clickhouse_cpu_us_per_point", label="CPU per point: ClickHouse inserts + merges", unit="µs",
           goal=0.5, direction="min",
           method="During the e2e throughput trials, until the merges they started have finished (bounded): the "
                  "server process's CPU from /proc minus the bench's own queries (their CPU from "
                  "`system.query_log`, reported apart), over the points; merges are its background threads."),
    Figure(key="e2e_latency_p50_s", label="Log call to queryable, p50 (at 100k points/s)", unit="s", direction="min",
           method="A paced producer logs 100,000 points/s and, every 50 ms, a sentinel point whose value is "
                  "`time.time()` at the call; the bench polls ClickHouse every 20 ms and records "
                  "first-seen time minus that value."),
    Figure(key="e2e_latency_p99_s", label="Log call to queryable, p99 (at 100k points/s)", unit="s", goal=2,
           direction="min", method="Same sentinels as p50."),
    Figure(key="raw_kafka_points_per_s", label="Ceiling: bare kafka-python", unit="points/s",
           method="The SDK's exact message bytes for the same points, produced by the same number of processes "
                  "with bare `KafkaProducer` (lz4, acks=all, as the SDK) and consumed by one bare `KafkaConsumer`; "
                  "start signal to last message consumed."),
    Figure(key="raw_clickhouse_points_per_s", label="Ceiling: bare clickhouse-driver", unit="points/s",
           method="The same points as `metric_scalars` rows, inserted with bare `clickhouse_driver.Client.execute` "
                  "(columnar) in batches of ingest's default `flush_rows` into the real schema."),
    Figure(key="pipeline_efficiency", label="Pipeline efficiency", unit="ratio", goal=0.5,
           method="`e2e_points_per_s / min(raw_kafka_points_per_s, raw_clickhouse_points_per_s)` (per trial: "
                  "that trial's e2e over the median ceiling)."),
    Figure(key="leaderboard_query_ms", label="Leaderboard query, 10M points", unit="ms", goal=100, direction="min",
           method="The sweep-analytics dashboard's Leaderboard SQL (last value per run of one metric, ranked) over "
                  "1,000 runs x 10 metrics x 1,000 steps loaded into a bench database of the real schema."),
    Figure(key="curve_query_ms", label="Curve query, 100 runs x 1,000 points", unit="ms", direction="min",
           method="One metric of 100 runs, bucketed to at most 1,000 points per run (avg per bucket), every row "
                  "returned to Python."),
    Figure(key="ui_curve_1m_points_ms", label="UI: a 1M-point curve drawn", unit="ms", goal=1500, direction="min",
           method="Headless Chromium opens a run page as a new document; from the navigation's start to the frame "
                  "with the run's 1,000,000-point curve drawn (the page's own record; it also checks the spike is "
                  "drawn and at most 4,000 points came over the wire). `runstream server` over the ClickHouse server."),
    Figure(key="ui_runs_table_1000_ms", label="UI: the table of 1,000 runs", unit="ms", goal=2000, direction="min",
           method="The same, for an experiment's runs table (1,000 runs, three properties, two metric columns): "
                  "navigation start to the frame with the table's rows."),
    Figure(key="ui_overlay_100_runs_ms", label="UI: 100 runs x 10,000 points overlaid", unit="ms", goal=2000,
           direction="min",
           method="The same, for the compare page of 100 runs' `loss` (10,000 points each): navigation start to "
                  "the frame with all 100 series drawn on one shared bucket grid."),
    Figure(key="sdk_rss_mb_per_million_buffered", label="SDK memory, 1M buffered points", unit="MB",
           direction="min",
           method="psutil RSS growth of a process whose transport is held (nothing leaves), per 1,000,000 "
                  "`run.log` calls."),
    Figure(key="ingest_rss_mb", label="Ingest RSS under load", unit="MB", direction="min",
           method="psutil RSS of the `runstream ingest` process, the peak sampled during each throughput trial."),
    Figure(key="ingest_first_assignment_s", label="New ingest worker: start to first partition", unit="s", goal=3,
           direction="min",
           method="A second `runstream ingest` process joins a group whose first worker owns all 8 partitions "
                  "of a fresh topic; from spawning it to its log line announcing its first non-empty assignment "
                  "(start-up, migrations, topic checks, the join and the rebalance it causes)."),
    Figure(key="cluster_e2e_points_per_s", label="End to end on the local cluster", unit="points/s",
           method="As `e2e_points_per_s`, on `deploy/local/cluster.sh` (3 brokers, RF 3, min ISR 2; 2 shards x "
                  "2 replicas of ClickHouse 18.16): two `runstream ingest` workers on 8 partitions insert "
                  "synchronously through the Distributed tables; the cluster shares the same 2 cores."),
    Figure(key="cluster_broker_failover_s", label="Broker SIGKILL until the pipeline writes again", unit="s",
           direction="min",
           method="A paced producer (20,000 points/s) logs a sentinel every 50 ms; the leader of the partition "
                  "it writes to is SIGKILLed; time from the kill until a sentinel logged after it is queryable "
                  "through the Distributed table. The broker is restarted between trials."),
    Figure(key="sweep_launch_overhead_ms", label="Sweep launch overhead per trial", unit="ms", direction="min",
           method="A HyperDrive sweep of 64 trivial trials (the script only attaches to its run), 8 at a time, on "
                  "the stack (Kafka, one `runstream ingest`, ClickHouse): wall time from `experiment.submit(hd)` "
                  "until `wait_for_completion()` returns, / 64."),
    Figure(key="sweep_policy_decision_s", label="Sweep policy decision, metric logged to trial stopped", unit="s",
           direction="min",
           method="BanditPolicy(slack_amount=0.1): five trials each log one value outside the slack of a good "
                  "trial's; each writes `time.time()` after its `run.log` and in its SIGTERM handler; median of "
                  "the differences (store round trip, the launcher's next read, the decision, the signal)."),
    Figure(key="stored_bytes_per_point", label="Scalar point stored (compressed)", unit="B", direction="min",
           method="After the e2e throughput trials: `metric_scalars`' active parts in `system.parts`, compressed "
                  "bytes on disk / rows."),
)
"""Every published figure, in table order."""

KEYS: tuple[str, ...] = tuple(f.key for f in FIGURES)
"""The top-level JSON keys (issue 8's names)."""

_BY_KEY = {f.key: f for f in FIGURES}


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    """Median, min and max over repeated trials (NaN trials are dropped)."""

    median: float
    min: float
    max: float
    trials: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"median": self.median, "min": self.min, "max": self.max, "trials": list(self.trials)}


def summarize(trials: Sequence[float]) -> Summary:
    """The summary of ``trials``; ``ValueError`` when none is a finite number."""
    kept = tuple(float(t) for t in trials if t is not None and math.isfinite(float(t)))
    if not kept:
        raise ValueError("no finite trial")
    return Summary(median=statistics.median(kept), min=min(kept), max=max(kept), trials=kept)


def goal_met(figure: Figure, value: float) -> bool | None:
    """Whether ``value`` meets the figure's goal; None when it has none."""
    if figure.goal is None:
        return None
    return value >= figure.goal if figure.direction == "max" else value <= figure.goal


def build_document(
    summaries: Mapping[str, Summary],
    *,
    machine: Mapping[str, Any],
    load: Mapping[str, Any],
    details: Mapping[str, Any],
    profiles: Mapping[str, Any],
    generated_at: str,
    duration_s: float,
) -> dict[str, Any]:
    """The ``latest.json`` document. A key without a summary is written as null (and flagged in ``missing``)."""
    unknown = sorted(set(summaries) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown figure(s): {', '.join(unknown)}")
    doc: dict[str, Any] = {"format": FORMAT, "generated_at": generated_at, "duration_s": round(duration_s, 1)}
    figures: dict[str, Any] = {}
    for figure in FIGURES:
        summary = summaries.get(figure.key)
        doc[figure.key] = None if summary is None else summary.median
        if summary is not None:
            figures[figure.key] = {**summary.to_dict(), "unit": figure.unit, "goal": figure.goal_text(),
                                   "met": goal_met(figure, summary.median)}
    doc["missing"] = [k for k in KEYS if k not in summaries]
    doc["figures"] = figures
    doc["machine"] = dict(machine)
    doc["load"] = dict(load)
    doc["details"] = dict(details)
    doc["profiles"] = dict(profiles)
    return doc


def missed_goals(doc: Mapping[str, Any]) -> list[str]:
    """Keys whose median misses its goal (or was not measured although it has one)."""
    out = []
    for figure in FIGURES:
        if figure.goal is None:
            continue
        value = doc.get(figure.key)
        if value is None or not goal_met(figure, float(value)):
            out.append(figure.key)
    return out


def format_value(value: float, unit: str) -> str:
    """A figure in its unit, rounded for reading: ``481 ns``, ``812,000 calls/s``, ``210x``, ``0.62 s``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit in ("points/s", "calls/s"):
        return f"{value:,.0f} {unit}" if value < 1e4 else f"{round(value, -3):,.0f} {unit}"
    if unit == "ns":
        return f"{value:,.0f} ns"
    if unit == "x":
        return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "µs":
        return f"{value:.2f} µs"
    if unit == "B":
        return f"{value:.1f} B"
    return f"{value:g} {unit}"


def _measured(entry: Mapping[str, Any], unit: str) -> str:
    median = format_value(entry["median"], unit)
    if len(entry.get("trials", ())) < 2:
        return median
    return f"{median} ({format_value(entry['min'], unit)} – {format_value(entry['max'], unit)})"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _stage_table(stages: Mapping[str, Any]) -> list[str]:
    """CPU per point of each stage, now and before issue 17 (whose stages were cut more coarsely)."""
    now, before = stages.get("now", {}), stages.get("before", {})
    lines = ["", "## CPU per point, stage by stage", "",
             "Medians over the e2e throughput trials, in CPU µs per point (process or thread CPU over the points).",
             "", "| Stage | µs per point |", "| --- | --- |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in now.items()]
    total = sum(v for k, v in now.items() if "apart" not in k)
    lines += [f"| **All stages** | **{total:.2f}** |"]
    if before:
        lines += ["", "Before issue 17 (ScalarBatch v1, clickhouse-driver inserts, the bench polling `count()`):", "",
                  "| Stage | µs per point |", "| --- | --- |"]
        lines += [f"| {name} | {value:.2f} |" for name, value in before.items()]
        lines += [f"| **All stages** | **{sum(before.values()):.2f}** |"]
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """BENCHMARKS.md: the table (figure, goal, measured, met?), method notes, the CPU per point of each stage,
    the design choices measured (``details.choices``: ``bench/choices.md`` verbatim), and the profiles of missed
    goals."""
    machine = doc.get("machine", {})
    load = doc.get("load", {})
    figures = doc.get("figures", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`) from `bench/results/latest.json`; do not edit by hand.",
        "",
        f"Measured {doc.get('generated_at', '?')} on {machine.get('cpu_model', '?')}, "
        f"{machine.get('logical_cpus', '?')} logical CPUs, {machine.get('memory_gb', '?')} GB RAM, "
        f"{machine.get('os', '?')}, Python {machine.get('python', '?')}, ClickHouse server "
        f"{machine.get('clickhouse_server', '?')}, Kafka {machine.get('kafka_broker', '?')}; "
        f"the suite took {doc.get('duration_s', '?')} s.",
        "",
    ]
    if load:
        lines += [f"Load: {load.get('note', '')}".rstrip(), ""]
    lines += [
        "Each figure is the median over repeated trials; the range in brackets is min – max.",
        "",
        "| Figure | Key | Goal | Measured | Met? |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in FIGURES:
        entry = figures.get(figure.key)
        if entry is None:
            lines.append(f"| {figure.label} | `{figure.key}` | {figure.goal_text()} | not measured | "
                         f"{'**no**' if figure.goal is not None else '—'} |")
            continue
        lines.append(f"| {figure.label} | `{figure.key}` | {figure.goal_text()} | {_measured(entry, figure.unit)} "
                     f"| {_met(entry.get('met'))} |")
    lines += ["", "## How each figure is measured", ""]
    for figure in FIGURES:
        lines.append(f"- **`{figure.key}`**: {figure.method}")
    stages = doc.get("details", {}).get("cpu_per_point")
    if stages:
        lines += _stage_table(stages)
    choices = doc.get("details", {}).get("choices")
    if choices:
        lines += ["", str(choices).rstrip("\n")]
    notes = doc.get("details", {}).get("notes", [])
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in notes]
    missed = missed_goals(doc)
    profiles = doc.get("profiles", {})
    if missed:
        lines += ["", "## Goals missed, and why", ""]
        for key in missed:
            figure = _BY_KEY[key]
            lines += [f"### `{key}`: {_measured(figures[key], figure.unit) if key in figures else 'not measured'}"
                      f" against {figure.goal_text()}", ""]
            profile = profiles.get(key)
            if not profile:
                lines += ["No profile was taken for this figure.", ""]
                continue
            if profile.get("analysis"):
                lines += [str(profile["analysis"]), ""]
            for block in profile.get("blocks", []):
                lines += [f"{block['title']}:", "", "```", *block["text"].rstrip("\n").split("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
