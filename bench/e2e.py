"""End to end: SDK producer processes -> the real broker -> one ``runstream ingest`` -> the ClickHouse server.

Keys: ``e2e_points_per_s``, ``e2e_latency_p50_s``, ``e2e_latency_p99_s``,
``ingest_rss_mb``, ``producer_cpu_us_per_point``, ``ingest_cpu_us_per_point``,
``clickhouse_cpu_us_per_point``.

One ingest process (the ``runstream`` CLI, default settings, Prometheus
endpoint on a free port) serves every trial; each trial logs under its own
experiment name into the same bench topic and database.

- Throughput: the producers (``bench.load burst``) first log one warm-up point
  each; once ingest has written those (ingest is assigned and consuming), GO,
  and the clock runs until ingest's own counter of written points
  (``runstream_points_written_total{table="metric_scalars"}``, read from its
  Prometheus endpoint every 50 ms) has grown by every point. The table under
  test is never scanned while the clock runs: one ``count()`` afterwards
  checks that every point is there. A point is counted once ClickHouse has
  accepted the insert that holds it, i.e. once it is queryable.
- CPU per point, per stage: the producers' background threads (the emitter's
  encode and kafka-python's compress and send: process CPU minus the thread
  that calls ``run.log``), ingest's process CPU, the broker's, and the
  ClickHouse server's split by :mod:`bench.server_cpu` into inserts, merges
  and the bench's own queries. Merges started by a trial's inserts are waited
  for (bounded) and counted with it; the figure is inserts + merges.
- Latency: one paced producer (``bench.load paced``, 100,000 points/s) logs a
  sentinel point every 50 ms whose value is ``time.time()`` at the call; the
  bench polls ClickHouse every 20 ms for new sentinels and records the time the
  answer came back minus that value (conservative by up to one poll). The
  ingest's own ``runstream_end_to_end_latency_seconds`` histogram over the same
  window (creation to insert, not to queryable) is recorded as a cross-check.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import server_cpu
from .child import REPO, Child
from .load import SENTINEL
from .stack import pid_listening_on

__all__ = ["Ingest", "throughput", "latency", "histogram_quantile", "parse_histogram", "parse_counter", "stage_costs",
           "BEFORE_US_PER_POINT"]

BEFORE_US_PER_POINT = {
    "SDK: `run.log` calls + background threads": 1.31, "Kafka broker": 0.20, "`runstream ingest`": 1.39,
    "ClickHouse: inserts + merges + the bench's polling": 1.78,
}
"""CPU per point by stage before issue 17 (``make bench`` of 2026-11-28: ScalarBatch v1, clickhouse-driver inserts,
completion polled with ``count()`` every 50 ms), for the before/after table."""

_HIST = "runstream_end_to_end_latency_seconds"
_WRITTEN = "runstream_points_written_total"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int | None) -> float:
    import psutil

    if pid is None:
        return float("nan")
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return float("nan")


@dataclass
class Ingest:
    """One ``runstream ingest`` process on a bench topic and database."""

    stack: Any
    topic: str
    database: str
    home: Path
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.home.parent / f"{self.home.name}.log", "wb")
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runstream", "-q", "ingest", "--kafka", self.stack.kafka,
             "--clickhouse", self.stack.url(self.database), "--topic", self.topic, "--group", self.topic,
             "--dlq-topic", self.topic + ".dlq", "--home", str(self.home), "--metrics-port", str(self.port),
             *self.extra_args],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runstream ingest exited {self.proc.returncode}; see {log.name}")
            try:
                self.metrics_text()
                tables = self.stack.client().execute(
                    "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'metric_scalars'",
                    {"db": self.database})[0][0]
                if tables:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("runstream ingest did not come up")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def points_written(self) -> float:
        """Rows ingest has written into ``metric_scalars`` so far (its Prometheus counter)."""
        return parse_counter(self.metrics_text(), _WRITTEN, {"table": "metric_scalars"})

    def rss(self) -> float:
        import psutil

        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _count(client: Any, database: str, experiment: str) -> int:
    return int(client.execute(f"SELECT count() FROM `{database}`.metric_scalars WHERE experiment = %(e)s",
                              {"e": experiment})[0][0])


def _wait_count(client: Any, database: str, experiment: str, expected: int, timeout: float,
                every: float = 0.05, sample: Any = None) -> float | None:
    """Poll until ``count() >= expected``; the wall time it was seen, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sample is not None:
            sample()
        if _count(client, database, experiment) >= expected:
            return time.time()
        time.sleep(every)
    return None


def _wait_written(ingest: Ingest, target: float, timeout: float, every: float = 0.05,
                  sample: Any = None) -> float | None:
    """Poll ingest's written-points counter until it reaches ``target``; the wall time seen, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sample is not None:
            sample()
        if ingest.points_written() >= target:
            return time.time()
        time.sleep(every)
    return None


def throughput(stack: Any, ingest: Ingest, scratch: Path, *, trials: int, producers: int,
               points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of ``e2e_points_per_s``, ``ingest_rss_mb`` (peak) and the CPU per point of every stage."""
    client = stack.client(ingest.database)
    assert ingest.proc is not None
    server_pid = pid_listening_on(int(stack.clickhouse.split("://", 1)[1].split("/")[0].rsplit(":", 1)[1]))
    pids = {"ingest": ingest.proc.pid, "kafka": pid_listening_on(int(stack.kafka.rsplit(":", 1)[1]))}
    out: dict[str, list[float]] = {k: [] for k in (
        "e2e_points_per_s", "ingest_rss_mb", "producer_cpu_us_per_point", "ingest_cpu_us_per_point",
        "clickhouse_cpu_us_per_point")}
    per_trial = []
    for t in range(trials):
        experiment = f"e2e-{stack.tag}-{t}"
        kids = [Child("bench.load", ["burst", "--kafka", stack.kafka, "--topic", ingest.topic,
                                     "--experiment", experiment, "--points", str(points), "--home", str(scratch)])
                for _ in range(producers)]
        try:
            before_warmup = ingest.points_written()
            for k in kids:
                k.wait_ready()
            if _wait_written(ingest, before_warmup + producers, 60) is None:
                raise RuntimeError("warm-up points never reached ClickHouse")
            server_cpu.wait_for_merges(client, ingest.database, timeout_s=30)  # the previous trial's tail
            peak = [ingest.rss()]
            start_written = ingest.points_written()
            cpu0 = {name: _cpu(pid) for name, pid in pids.items()}
            server0 = server_cpu.snapshot(server_pid)
            t0 = time.time()
            for k in kids:
                k.go()
            total = producers * (points // 5 * 5)
            seen = _wait_written(ingest, start_written + total, 300, sample=lambda: peak.append(ingest.rss()))
            if seen is None:
                raise RuntimeError(f"e2e trial {t}: not every point reached ClickHouse in 300 s")
            cpu = {name: _cpu(pid) - cpu0[name] for name, pid in pids.items()}
            server_busy = server_cpu.snapshot(server_pid) - server0
            sent = [k.result() for k in kids]
        finally:
            for k in kids:
                k.kill()
        landed = int(server_cpu.tagged_query(
            client, f"SELECT count() FROM `{ingest.database}`.metric_scalars WHERE experiment = %(e)s",
            {"e": experiment})[0][0])
        if landed < total + producers:
            raise RuntimeError(f"e2e trial {t}: the counter said done but {landed} of {total + producers} rows landed")
        settle_s = server_cpu.wait_for_merges(client, ingest.database)
        server = server_cpu.snapshot(server_pid) - server0
        queries = server_cpu.queries_cpu_s(client, t0 - 1)
        elapsed = seen - t0
        cpu["producers"] = sum(s["cpu_s"] for s in sent)
        cpu["producers_background"] = sum(s["background_cpu_s"] for s in sent)
        cpu["clickhouse"] = server_busy.total_s
        split = {"inserts": server.total_s - server.merges_s - queries, "merges": server.merges_s,
                 "queries": queries, "settle_s": settle_s}
        out["e2e_points_per_s"].append(total / elapsed)
        out["ingest_rss_mb"].append(max(peak) / 1e6)
        out["producer_cpu_us_per_point"].append(cpu["producers_background"] / total * 1e6)
        out["ingest_cpu_us_per_point"].append(cpu["ingest"] / total * 1e6)
        out["clickhouse_cpu_us_per_point"].append((split["inserts"] + split["merges"]) / total * 1e6)
        per_trial.append({"points": total, "elapsed_s": elapsed, "cpu_s": cpu, "clickhouse_split_s": split,
                          "producer_log_s": [s["log_s"] for s in sent],
                          "producer_flush_s": [s["flush_s"] for s in sent],
                          "producer_log_thread_cpu_s": [s["log_thread_cpu_s"] for s in sent]})
    client.disconnect()
    return out, {"producers": producers, "points_per_producer": points, "trials": per_trial}


def stage_costs(trials: list[dict[str, Any]]) -> dict[str, float]:
    """Median CPU µs per point of each stage over the throughput trials (BENCHMARKS.md's stage table)."""
    import statistics

    def median(f: Any) -> float:
        return statistics.median(f(t) / t["points"] * 1e6 for t in trials)

    return {
        "SDK: `run.log` calls (the training thread)": median(lambda t: sum(t["producer_log_thread_cpu_s"])),
        "SDK: background threads (encode, compress, send)": median(lambda t: t["cpu_s"]["producers_background"]),
        "Kafka broker": median(lambda t: t["cpu_s"]["kafka"]),
        "`runstream ingest`": median(lambda t: t["cpu_s"]["ingest"]),
        "ClickHouse: inserts": median(lambda t: t["clickhouse_split_s"]["inserts"]),
        "ClickHouse: merges": median(lambda t: t["clickhouse_split_s"]["merges"]),
        "ClickHouse: the bench's own queries (apart)": median(lambda t: t["clickhouse_split_s"]["queries"]),
    }


def parse_histogram(text: str, name: str = _HIST) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of a Prometheus text exposition."""
    out: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(value)
    return out


def parse_counter(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of one labelled sample of a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            got = ",".join(sorted(head[len(name) + 1:-1].split(",")))
            if got == want:
                return float(value)
    return 0.0


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """PromQL-style quantile of the observations between two snapshots (linear inside a bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts):
        if cum >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / (cum - below) if cum > below else 0.0)
        lower, below = bound, cum
    return lower


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(stack: Any, ingest: Ingest, scratch: Path, *, trials: int, rate: float,
            seconds: float, poll_s: float = 0.02) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of ``e2e_latency_p50_s`` / ``e2e_latency_p99_s`` at a fixed load."""
    client = stack.client(ingest.database)
    p50s, p99s, per_trial = [], [], []
    hist_before = parse_histogram(ingest.metrics_text())
    all_latencies: list[float] = []
    for t in range(trials):
        experiment = f"lat-{stack.tag}-{t}"
        kid = Child("bench.load", ["paced", "--kafka", stack.kafka, "--topic", ingest.topic, "--experiment",
                                   experiment, "--rate", str(rate), "--seconds", str(seconds), "--home", str(scratch)])
        latencies: list[float] = []
        try:
            kid.wait_ready()
            if _wait_count(client, ingest.database, experiment, 1, 60) is None:
                raise RuntimeError("warm-up point never reached ClickHouse")
            kid.go()
            next_step = 0
            deadline = time.monotonic() + seconds + 30
            expected = round(seconds / 0.05)
            while next_step < expected and time.monotonic() < deadline:
                rows = client.execute(
                    f"SELECT step, value FROM `{ingest.database}`.metric_scalars WHERE experiment = %(e)s "
                    f"AND name = %(n)s AND step >= %(s)s", {"e": experiment, "n": SENTINEL, "s": next_step})
                now = time.time()
                for step, value in rows:
                    if step >= next_step:
                        latencies.append(now - value)
                next_step = max([next_step - 1] + [r[0] for r in rows]) + 1
                time.sleep(poll_s)
            sent = kid.result()
        finally:
            kid.kill()
        if not latencies:
            raise RuntimeError(f"latency trial {t}: no sentinel seen")
        all_latencies += latencies
        p50s.append(_percentile(latencies, 0.5))
        p99s.append(_percentile(latencies, 0.99))
        per_trial.append({"sentinels_seen": len(latencies), "sentinels_sent": sent["sentinels"],
                          "achieved_rate": sent["rate"], "late_ticks": sent["late_ticks"], "max_s": max(latencies)})
    hist_after = parse_histogram(ingest.metrics_text())
    client.disconnect()
    details = {"rate": rate, "seconds_per_trial": seconds, "poll_s": poll_s, "trials": per_trial,
               "pooled_p50_s": _percentile(all_latencies, 0.5), "pooled_p99_s": _percentile(all_latencies, 0.99),
               "ingest_histogram_p50_s": histogram_quantile(0.5, hist_before, hist_after),
               "ingest_histogram_p99_s": histogram_quantile(0.99, hist_before, hist_after)}
    return {"e2e_latency_p50_s": p50s, "e2e_latency_p99_s": p99s}, details
