"""The cluster figures, on the local cluster of ``deploy/local/cluster.sh`` (3 brokers, 2 x 2 ClickHouse 18.16).

Keys: ``cluster_e2e_points_per_s``, ``cluster_broker_failover_s``.

The cluster is started here when it is not running, and stopped again at the
end in that case (a cluster that was up before is left up). Two ``runstream
ingest`` workers share an 8-partition topic (replication factor 3) and write
through the Distributed tables (``?cluster=runstream``, synchronous inserts).

- Throughput: like ``e2e_points_per_s`` (``bench.load burst`` producers, the
  clock from GO until ``count()`` through the Distributed table reaches every
  point), on the cluster.
- Broker failover: a paced producer (``bench.load paced``, ``stall_timeout_s``
  30 as advised for clusters) logs a sentinel every 50 ms whose value is
  ``time.time()`` at the call. Once sentinels flow,
  the leader of the partition they travel on is SIGKILLed; the figure is the
  time from the kill until a sentinel logged after it is queryable: the
  producer noticed, the partition got a new leader, the worker fetched from it
  and the insert went through. The broker is restarted before the next trial.
- Details (no key): compressed bytes per stored point of ``metric_scalars`` on
  one replica (``system.parts``), the input of the README's disk sizing.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .child import REPO, Child
from .e2e import Ingest
from .load import SENTINEL
from .stack import delete_topics, drop_databases

__all__ = ["ClusterStack", "measure"]

log = logging.getLogger("bench")

SCRIPT = REPO / "deploy" / "local" / "cluster.sh"

STALL_TIMEOUT_S = 30.0
"""The paced producer's ``stall_timeout_s`` (the README's advice for clusters): a broker failover takes
seconds, and with the default 5 s a slow one sends the SDK through its on-disk outbox, whose reconnect
backoff then dominates the figure."""


def _script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@dataclass(kw_only=True)
class ClusterStack:
    """The cluster's endpoints, shaped like :class:`bench.stack.Stack` for :class:`bench.e2e.Ingest`."""

    kafka: str
    clickhouse: str
    """The cluster URL (``?cluster=...&alt_hosts=...``) with database ``runstream``."""
    tag: str
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @classmethod
    def from_script(cls, tag: str) -> ClusterStack:
        env = dict(line.split("=", 1) for line in _script("env").stdout.splitlines() if "=" in line)
        return cls(kafka=env["RUNSTREAM_KAFKA"], clickhouse=env["RUNSTREAM_CLICKHOUSE"], tag=tag)

    @property
    def cluster(self) -> str:
        return dict(parse_qsl(urlsplit(self.clickhouse).query))["cluster"]

    def name(self, what: str) -> str:
        return f"rs_bench_{self.tag}_{what}"

    def url(self, database: str) -> str:
        if database not in self.databases and database != "default":
            self.databases.append(database)
        return urlsplit(self.clickhouse)._replace(path="/" + database).geturl()

    def create_topic(self, topic: str, partitions: int) -> str:
        from schemas.kafka_client import ensure_topics

        ensure_topics({"bootstrap_servers": self.kafka}, {topic: partitions}, timeout_s=30)  # the brokers' RF 3
        self.topics += [topic, topic + ".dlq"]
        return topic

    def client(self, database: str = "default") -> Any:
        from clickhouse_driver import Client

        parts = urlsplit(self.url(database))
        alt = dict(parse_qsl(parts.query)).get("alt_hosts")
        return Client(parts.hostname, port=parts.port or 9000, database=database, alt_hosts=alt)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> end offset of ``topic``."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.kafka.split(","), client_id="runstream-bench")
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            return {tp.partition: int(end) for tp, end in consumer.end_offsets(partitions).items()}
        finally:
            consumer.close()

    def settled(self, topic: str) -> bool:
        """Every partition of ``topic`` has all its replicas in sync and its preferred leader back."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.kafka.split(","), client_id="runstream-bench")
        try:
            [described] = admin.describe_topics([topic])
        finally:
            admin.close()
        return all(len(p["isr_nodes"]) == len(p["replica_nodes"]) and p["leader_id"] == p["replica_nodes"][0]
                   for p in described["partitions"])

    def leader(self, topic: str, partition: int) -> str:
        """The node name (``kafka-N``) leading ``partition`` of ``topic``."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.kafka.split(","), client_id="runstream-bench")
        try:
            [described] = admin.describe_topics([topic])
        finally:
            admin.close()
        return f"kafka-{next(p['leader_id'] for p in described['partitions'] if p['partition_index'] == partition)}"

    def cleanup(self) -> None:
        """Drop the bench databases on every server and delete the bench topics (best effort, logged)."""
        drop_databases(self.client, self.databases, on_cluster=self.cluster)
        delete_topics(self.kafka.split(","), self.topics)


def _count(client: Any, database: str, experiment: str, name: str | None = None) -> int:
    where = "" if name is None else " AND name = %(n)s"
    return int(client.execute(f"SELECT count() FROM `{database}`.metric_scalars WHERE experiment = %(e)s{where}",
                              {"e": experiment, "n": name})[0][0])


def _wait(predicate: Any, timeout: float, every: float = 0.05) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.time()
        except Exception:  # a server of the cluster may be going down or up: ask again
            pass
        time.sleep(every)
    return None


def _throughput(stack: ClusterStack, database: str, topic: str, scratch: Path, *, trials: int, producers: int,
                points: int) -> tuple[list[float], list[dict[str, Any]]]:
    client = stack.client(database)
    rates, per_trial = [], []
    for t in range(trials):
        experiment = f"cluster-e2e-{stack.tag}-{t}"
        kids = [Child("bench.load", ["burst", "--kafka", stack.kafka, "--topic", topic, "--experiment", experiment,
                                     "--points", str(points), "--home", str(scratch)]) for _ in range(producers)]
        try:
            for k in kids:
                k.wait_ready()
            if _wait(lambda: _count(client, database, experiment) >= producers, 120) is None:
                raise RuntimeError("cluster warm-up points never reached ClickHouse")
            t0 = time.time()
            for k in kids:
                k.go()
            total = producers * (points // 5 * 5)
            seen = _wait(lambda: _count(client, database, experiment) >= producers + total, 600)
            if seen is None:
                raise RuntimeError(f"cluster e2e trial {t}: not every point reached ClickHouse in 600 s")
            for k in kids:
                k.result()
        finally:
            for k in kids:
                k.kill()
        rates.append(total / (seen - t0))
        per_trial.append({"points": total, "elapsed_s": seen - t0})
    client.disconnect()
    return rates, per_trial


def _failover(stack: ClusterStack, database: str, topic: str, scratch: Path, *, trials: int,
              rate: float) -> tuple[list[float], list[dict[str, Any]]]:
    client = stack.client(database)
    results, per_trial = [], []
    for t in range(trials):
        experiment = f"cluster-failover-{stack.tag}-{t}"
        # The broker restarted by the previous trial must have caught up (with one replica short, killing
        # another would leave partitions below min.insync.replicas: another test) and taken its leaderships
        # back (else the next victim would lead everything): each trial starts from the same state.
        if _wait(lambda: stack.settled(topic), 300, every=1.0) is None:
            raise RuntimeError("cluster failover: the topic's replicas and leaders did not settle in 300 s")
        before = stack.end_offsets(topic)
        # Long enough to outlast the kill and the recovery; stopped as soon as the figure is taken.
        kid = Child("bench.load", ["paced", "--kafka", stack.kafka, "--topic", topic, "--experiment", experiment,
                                   "--rate", str(rate), "--seconds", "120", "--home", str(scratch),
                                   "--stall-timeout", str(STALL_TIMEOUT_S)])
        victim = None
        try:
            kid.wait_ready()
            kid.go()
            if _wait(lambda: _count(client, database, experiment, SENTINEL) >= 5, 120) is None:
                raise RuntimeError("cluster failover: sentinels never reached ClickHouse")
            # The paced producer logs one run: its events travel on one partition. Kill that partition's leader.
            after = stack.end_offsets(topic)
            busiest = max(after, key=lambda p: after[p] - before.get(p, 0))
            victim = stack.leader(topic, busiest)
            done = _script("kill-node", victim)
            killed = time.time()
            if done.returncode != 0:
                raise RuntimeError(f"cluster.sh kill-node {victim}: {done.stderr}")

            def after_kill() -> bool:
                newest = client.execute(
                    f"SELECT max(value) FROM `{database}`.metric_scalars WHERE experiment = %(e)s AND name = %(n)s",
                    {"e": experiment, "n": SENTINEL})[0][0]
                return bool(newest and newest > killed)

            seen = _wait(after_kill, 120, every=0.02)
            if seen is None:
                raise RuntimeError(f"cluster failover trial {t}: nothing logged after the kill was written in 120 s")
            if kid.proc.poll() is not None:
                raise RuntimeError(f"cluster failover trial {t}: the paced producer ended early ({kid.proc.returncode})")
            results.append(seen - killed)
            per_trial.append({"killed": victim, "failover_s": seen - killed})
        finally:
            kid.kill()
            if victim is not None:
                done = _script("start-node", victim)
                if done.returncode != 0:
                    raise RuntimeError(f"cluster.sh start-node {victim}: {done.stderr}")
    client.disconnect()
    return results, per_trial


def _bytes_per_point(stack: ClusterStack, database: str) -> dict[str, float]:
    """Compressed and uncompressed bytes per row of ``metric_scalars`` parts, over every server (all replicas)."""
    totals = {"rows": 0, "compressed": 0, "uncompressed": 0}
    parts = urlsplit(stack.clickhouse)
    hosts = [(parts.hostname, parts.port)] + [
        (h, int(p)) for h, _, p in (a.rpartition(":") for a in dict(parse_qsl(parts.query))["alt_hosts"].split(","))]
    from clickhouse_driver import Client

    for host, port in hosts:
        c = Client(host, port=port)
        rows, comp, uncomp = c.execute(
            "SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts "
            "WHERE database = %(db)s AND table = 'metric_scalars_local' AND active", {"db": database})[0]
        c.disconnect()
        totals["rows"] += int(rows or 0)
        totals["compressed"] += int(comp or 0)
        totals["uncompressed"] += int(uncomp or 0)
    rows = max(1, totals["rows"])
    return {"rows_all_replicas": totals["rows"], "compressed_bytes_per_point": totals["compressed"] / rows,
            "uncompressed_bytes_per_point": totals["uncompressed"] / rows}


def measure(scratch: Path, *, tag: str, trials: int, producers: int, points: int, partitions: int = 8,
            workers: int = 2, failover_trials: int = 3,
            failover_rate: float = 20_000.0) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The cluster figures (see the module docstring); starts and stops the cluster when it was down."""
    started_here = _script("status", timeout=120).returncode != 0
    if started_here:
        done = _script("start", timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/local/cluster.sh start failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    stack = ClusterStack.from_script(tag)
    ingests: list[Ingest] = []
    try:
        database = stack.name("cluster")
        topic = stack.create_topic(stack.name("cluster"), partitions)
        for w in range(workers):
            ingest = Ingest(stack=stack, topic=topic, database=database, home=scratch / f"cluster-ingest-{w}",
                            extra_args=("--partitions", str(partitions)))
            ingest.start(timeout=180)
            ingests.append(ingest)
        rates, tp_trials = _throughput(stack, database, topic, scratch, trials=trials, producers=producers,
                                       points=points)
        failovers, fo_trials = _failover(stack, database, topic, scratch, trials=failover_trials,
                                         rate=failover_rate)
        storage = _bytes_per_point(stack, database)
    finally:
        for ingest in ingests:
            ingest.stop()
        stack.cleanup()
        if started_here:
            _script("stop", timeout=300)
    details = {"workers": workers, "partitions": partitions, "producers": producers, "points_per_producer": points,
               "throughput_trials": tp_trials, "failover_trials": fo_trials, "failover_rate": failover_rate,
               "storage": storage, "started_cluster": started_here,
               "median_failover_s": statistics.median(failovers)}
    return {"cluster_e2e_points_per_s": rates, "cluster_broker_failover_s": failovers}, details
