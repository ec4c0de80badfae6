"""The local cluster and a pipeline on it, for the fault tests.

:class:`Cluster` drives ``deploy/local/cluster.sh`` (SIGKILL, restart) and knows
which ClickHouse server is which replica of which shard. :class:`Pipeline` is one
test's pipeline on it: its own topic, consumer group and database; ``runstream
ingest`` workers; producer processes running :mod:`tests.cluster.workload`; and
the exact checks (through the Distributed tables, through the SDK, and replica
by replica).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from clickhouse_driver import Client

from consumers.testing import wait_until
from runstream.testing import IngestProcess
from schemas.kafka_client import ensure_topics
from store import TABLES

from .workload import expected_values, metric_names

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local" / "cluster.sh"
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


class ClusterNotReady(Exception):
    """``cluster.sh status`` says some node is down or not answering."""


def _script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _execute(client: Client, sql: str) -> list[tuple[Any, ...]]:
    try:
        return list(client.execute(sql))
    finally:
        client.disconnect()


@dataclass
class Cluster:
    """The running local cluster: its endpoints and its nodes."""

    kafka: str
    clickhouse: str
    """The cluster URL printed by ``cluster.sh env`` (database ``runstream``)."""
    servers: dict[str, tuple[str, int]]
    """ClickHouse node name -> (host, native port)."""
    shards: dict[int, list[str]]
    """Shard number -> its replicas' node names."""
    down: set[str] = field(default_factory=set)
    """Nodes this session killed and has not started again."""

    @classmethod
    def from_script(cls) -> Cluster:
        status = _script("status", timeout=120)
        if status.returncode != 0:
            raise ClusterNotReady(f"deploy/local/cluster.sh status:\n{status.stdout}{status.stderr}")
        env = dict(line.split("=", 1) for line in _script("env").stdout.splitlines() if "=" in line)
        url = env["RUNSTREAM_CLICKHOUSE"]
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        hosts = [(parts.hostname or "", parts.port or 9000)]
        hosts += [(h, int(p)) for h, _, p in (a.rpartition(":") for a in query.get("alt_hosts", "").split(",") if a)]
        servers: dict[str, tuple[str, int]] = {}
        shards: dict[int, list[str]] = {}
        for host, port in hosts:
            macros = dict(_execute(Client(host, port=port), "SELECT macro, substitution FROM system.macros"))
            servers[macros["replica"]] = (host, port)
            shards.setdefault(int(macros["shard"]), []).append(macros["replica"])
        return cls(kafka=env["RUNSTREAM_KAFKA"], clickhouse=url, servers=servers, shards=shards)

    def url(self, database: str) -> str:
        """The cluster URL with another database."""
        parts = urlsplit(self.clickhouse)
        return parts._replace(path="/" + database).geturl()

    def execute(self, sql: str, node: str | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on ``node``, or on any server that answers (failing over like runstream)."""
        if node is not None:
            host, port = self.servers[node]
            return _execute(Client(host, port=port, send_receive_timeout=120), sql)
        (host, port), *others = self.servers.values()
        return _execute(Client(host, port=port, alt_hosts=",".join(f"{h}:{p}" for h, p in others),
                               send_receive_timeout=120), sql)

    def kill(self, node: str) -> float:
        """SIGKILL ``node``; returns the monotonic time of the kill."""
        self.down.add(node)
        done = _script("kill-node", node)
        assert done.returncode == 0, done.stdout + done.stderr
        return time.monotonic()

    def start(self, node: str) -> None:
        """Start ``node`` and wait until it is back in the cluster."""
        done = _script("start-node", node)
        assert done.returncode == 0, done.stdout + done.stderr
        self.down.discard(node)

    def start_all(self) -> None:
        """Every node this session killed running and ready again."""
        if self.down:
            done = _script("start", timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            self.down.clear()

    def sync_replicas(self, database: str) -> None:
        """``SYSTEM SYNC REPLICA`` on every replicated table of every server."""
        for node in self.servers:
            for table in TABLES:
                local = table if table == "schema_migrations" else table + "_local"
                self.execute(f"SYSTEM SYNC REPLICA `{database}`.`{local}`", node)


@dataclass
class Producer:
    """One :mod:`tests.cluster.workload` process."""

    writer: int
    proc: subprocess.Popen[str]
    log_path: Path

    def wait(self, timeout_s: float) -> list[str]:
        """Wait for a clean exit; the run ids it logged (in run order)."""
        out, _ = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, f"producer {self.writer} exited {self.proc.returncode}:\n{self.log()}"
        return list(json.loads(out.strip().splitlines()[-1]))

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]


@dataclass
class Pipeline:
    """One test's topic, group and database on the cluster, its workers and its producers."""

    cluster: Cluster
    name: str
    scratch: Path
    partitions: int = 6
    names: int = 3
    runs: int = 3
    steps: int = 1500
    workers: list[IngestProcess] = field(default_factory=list)
    producers: list[Producer] = field(default_factory=list)
    run_ids: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ensure_topics({"bootstrap_servers": self.cluster.kafka}, {self.name: self.partitions})

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    # -- processes ----------------------------------------------------------------------------

    def start_worker(self, *extra: str) -> IngestProcess:
        index = len(self.workers)
        args = ["--kafka", self.cluster.kafka, "--clickhouse", self.url, "--topic", self.name, "--group", self.name,
                "--dlq-topic", self.name + ".dlq", "--partitions", str(self.partitions),
                "--flush-interval", "0.2", *extra]
        worker = IngestProcess(args, self.scratch / f"worker{index}.log").start()
        self.workers.append(worker)
        return worker

    def start_producers(self, count: int, *, duration_s: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        for _ in range(count):
            writer = len(self.producers) + 1
            log_path = self.scratch / f"producer{writer}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.cluster.workload", "--kafka", self.cluster.kafka,
                     "--topic", self.name, "--home", str(self.scratch / f"home{writer}"),
                     "--experiment", self.name, "--writer", str(writer), "--runs", str(self.runs),
                     "--names", str(self.names), "--steps", str(self.steps), "--duration", str(duration_s)],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
            self.producers.append(Producer(writer, proc, log_path))

    def wait_producers(self, timeout_s: float = 300) -> None:
        for producer in self.producers:
            self.run_ids[producer.writer] = producer.wait(timeout_s)

    def close(self) -> None:
        for producer in self.producers:
            if producer.proc.poll() is None:
                producer.proc.kill()
                producer.proc.communicate(timeout=30)
        for worker in self.workers:
            worker.kill()

    def drop(self) -> None:
        """Drop the database on every server (frees the replicas' ZooKeeper nodes) and the topics."""
        self.cluster.execute(f"DROP DATABASE IF EXISTS `{self.name}` ON CLUSTER "
                                          f"{dict(parse_qsl(urlsplit(self.url).query))['cluster']}")
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.cluster.kafka.split(","))
        try:
            admin.delete_topics([self.name, self.name + ".dlq"])
        except Exception:  # the DLQ topic may not exist; leftovers only cost disk
            pass
        finally:
            admin.close()

    # -- what the readers see ------------------------------------------------------------------

    @property
    def expected_points(self) -> int:
        return len(self.producers) * self.runs * self.names * self.steps

    def points(self, *, final: bool = True, names: Iterable[str] | None = None) -> int:
        where = "" if names is None else f" WHERE name IN ({', '.join(repr(n) for n in names)})"
        try:
            return int(self.cluster.execute(
                f"SELECT count() FROM `{self.name}`.metric_scalars{' FINAL' if final else ''}{where}")[0][0])
        except Exception:
            return -1  # not migrated yet, or a server is just going down

    def wait_points(self, expected: int, *, timeout_s: float = 300, names: Iterable[str] | None = None) -> None:
        wanted = list(names) if names is not None else None
        try:
            wait_until(lambda: self.points(names=wanted) >= expected, timeout_s=timeout_s,
                       what=f"{expected} points in {self.name}.metric_scalars")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last count {self.points(names=wanted)}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """What a failed wait needs: each replica's state and the tail of every worker's own log lines."""
        lines = []
        for node in self.cluster.servers:
            try:
                rows = self.cluster.execute(
                    "SELECT table, is_readonly, is_session_expired, queue_size, inserts_in_queue "
                    f"FROM system.replicas WHERE database = '{self.name}'", node)
                lines.append(f"{node}: (table, readonly, session_expired, queue, inserts_in_queue) {rows}")
            except Exception as exc:  # the server may be the one that is down
                lines.append(f"{node}: {exc!r}")
        for index, worker in enumerate(self.workers):
            own = [line for line in worker.output().splitlines() if " runstream." in line]
            lines.append(f"--- worker {index} ---")
            lines.extend(line[:400] for line in own[-15:])
        return "\n".join(lines)

    def first_rows(self, timeout_s: float = 120) -> None:
        wait_until(lambda: self.points(final=False) > 0, timeout_s=timeout_s, what="the first rows")

    def assert_exact(self, *, kept_names: Sequence[str] | None = None) -> None:
        """Every point exactly once: through the Distributed table, through the SDK, and on every replica."""
        names = list(kept_names) if kept_names is not None else metric_names(self.names)
        expected: dict[tuple[str, str], tuple[int, float]] = {}
        by_run: dict[str, dict[str, list[float]]] = {}
        for writer, ids in self.run_ids.items():
            for run, run_id in enumerate(ids):
                values = {n: v for n, v in expected_values(writer, run, self.names, self.steps).items() if n in names}
                by_run[run_id] = values
                for name, series in values.items():
                    expected[(run_id, name)] = (len(series), sum(series))
        rows = self.cluster.execute(
            f"SELECT run_id, name, count(), sum(value) FROM `{self.name}`.metric_scalars FINAL "
            f"GROUP BY run_id, name")
        seen = {(r, n): (int(c), float(s)) for r, n, c, s in rows}
        assert seen == expected

        from producers import Experiment, Run, Workspace

        ws = Workspace(kafka=self.cluster.kafka, clickhouse=self.url, topic=self.name,
                       home=str(self.scratch / "reader"))
        try:
            experiment = Experiment(ws, self.name)
            for run_id, values in by_run.items():
                assert Run(experiment, run_id).get_metrics() == values, run_id
        finally:
            ws.close(timeout=10)

        self.cluster.sync_replicas(self.name)
        total = 0
        for shard, nodes in self.cluster.shards.items():
            counts = {node: int(self.cluster.execute(
                f"SELECT count() FROM `{self.name}`.metric_scalars_local FINAL", node)[0][0]) for node in nodes}
            assert len(set(counts.values())) == 1, f"shard {shard}'s replicas differ: {counts}"
            total += next(iter(counts.values()))
        assert total == sum(count for count, _ in expected.values())

    def worker_logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)


def rejected(pipeline: Pipeline, reason: str | None = None) -> int:
    """Rows of ``rejected_events`` (deduplicated), of one reason or all."""
    where = "" if reason is None else f" WHERE reason = '{reason}'"
    return int(pipeline.cluster.execute(
        f"SELECT count() FROM `{pipeline.name}`.rejected_events FINAL{where}")[0][0])

