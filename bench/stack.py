"""The real local stack as the benchmark sees it: endpoints, a liveness check, bench-only topics and databases.

``python -m bench.stack check`` exits 0 when Kafka and ClickHouse both answer
(``make bench`` uses it to decide whether it must start, and later stop, the
stack). Every topic and database the suite makes has a unique ``rs_bench_``
name and is dropped by :meth:`Stack.cleanup`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stack", "from_env", "answers", "pid_listening_on", "drop_databases", "delete_topics"]

log = logging.getLogger("bench")


def _kafka_answers(bootstrap: str) -> bool:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runstream-bench-probe",
                                 request_timeout_ms=3000, bootstrap_timeout_ms=2000)
    except Exception:
        return False
    try:
        return any(not b.get("is_fenced") for b in admin.describe_cluster()["brokers"])
    except Exception:
        return False
    finally:
        admin.close()


def _clickhouse_answers(url: str) -> bool:
    from clickhouse_driver import Client

    try:
        client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
        client.connection.connect_timeout = 3
        client.execute("SELECT 1")
        client.disconnect()
        return True
    except Exception:
        return False


def answers(kafka: str, clickhouse: str) -> bool:
    """True when the broker describes an unfenced node and the server answers ``SELECT 1``."""
    return _kafka_answers(kafka) and _clickhouse_answers(clickhouse)


def pid_listening_on(port: int) -> int | None:
    """The pid of the process listening on ``127.0.0.1:port`` (the broker, the server), or None."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (psutil.AccessDenied, OSError):
        return None
    return None


@dataclass(kw_only=True)
class Stack:
    """Endpoints of the stack plus the bench topics and databases made so far (for cleanup)."""

    kafka: str
    clickhouse: str
    """A ``clickhouse://host:port/db`` URL; the bench swaps the database for its own."""
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def name(self, what: str) -> str:
        """A unique bench name, valid as a topic and a database: ``rs_bench_<tag>_<what>``."""
        return f"rs_bench_{self.tag}_{what}"

    def url(self, database: str) -> str:
        """The ClickHouse URL of ``database`` (remembered for cleanup)."""
        if database not in self.databases:
            self.databases.append(database)
        return self.clickhouse.rsplit("/", 1)[0] + "/" + database

    def create_topic(self, topic: str, partitions: int) -> str:
        """Create ``topic`` (remembered for cleanup, with its ``.dlq``)."""
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.kafka, client_id="runstream-bench")
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        self.topics += [topic, topic + ".dlq"]
        return topic

    def client(self, database: str = "default") -> Any:
        """A bare clickhouse-driver client on ``database``."""
        from clickhouse_driver import Client

        return Client.from_url(self.url(database) if database != "default" else
                               self.clickhouse.rsplit("/", 1)[0] + "/default")

    def server_version(self) -> str:
        return str(self.client().execute("SELECT version()")[0][0])

    def cleanup(self) -> None:
        """Drop every bench database and delete every bench topic (best effort, logged)."""
        drop_databases(self.client, self.databases)
        delete_topics([self.kafka], self.topics)


def drop_databases(client: Callable[[], Any], databases: Sequence[str], on_cluster: str = "") -> None:
    """``DROP DATABASE`` each of ``databases`` (``ON CLUSTER`` when named); failures are logged, not raised."""
    if not databases:
        return
    suffix = f" ON CLUSTER {on_cluster}" if on_cluster else ""
    try:
        conn = client()
        for db in databases:
            conn.execute(f"DROP DATABASE IF EXISTS `{db}`{suffix}")
        conn.disconnect()
    except Exception as exc:  # cleanup must not hide the results
        log.warning("bench: could not drop %s: %s", list(databases), exc)


def delete_topics(bootstrap: list[str], topics: Sequence[str]) -> None:
    """Delete those of ``topics`` that exist; failures are logged, not raised."""
    if not topics:
        return
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runstream-bench")
        existing = set(admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            admin.delete_topics(doomed)
        admin.close()
    except Exception as exc:  # cleanup must not hide the results
        log.warning("bench: could not delete topics %s: %s", list(topics), exc)


def from_env(env: dict[str, str] | None = None) -> Stack:
    """The stack of ``RUNSTREAM_KAFKA`` / ``RUNSTREAM_CLICKHOUSE`` (defaults: the local stack's)."""
    env = dict(os.environ) if env is None else env
    return Stack(kafka=env.get("RUNSTREAM_KAFKA") or "127.0.0.1:9092",
                 clickhouse=env.get("RUNSTREAM_CLICKHOUSE") or "clickhouse://127.0.0.1:9000/runstream")


def _main(argv: list[str]) -> int:
    if argv[:1] != ["check"]:
        print("usage: python -m bench.stack check", file=sys.stderr)
        return 2
    logging.getLogger("kafka").addHandler(logging.NullHandler())
    logging.getLogger("kafka").propagate = False
    stack = from_env()
    for _ in range(3):  # a busy broker may miss one probe
        if answers(stack.kafka, stack.clickhouse):
            print(f"bench: stack answers (Kafka {stack.kafka}, ClickHouse {stack.clickhouse})")
            return 0
        time.sleep(1)
    print(f"bench: stack not answering (Kafka {stack.kafka}, ClickHouse {stack.clickhouse})")
    return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
