"""The exporter's adapters to the real Kafka and ClickHouse clients.

:class:`KafkaAdminOffsets` fulfils :class:`consumers.exporter.OffsetReader`
with kafka-python's ``KafkaAdminClient`` (``describe_topics``,
``list_partition_offsets``, ``list_group_offsets``: one client, no consumer
joins any group). :class:`ClickHouseSystemStats` fulfils
:class:`consumers.exporter.ClickHouseStats` with clickhouse-driver and the
``system.tables`` / ``system.parts`` tables, which every server version has.

Both connect lazily and drop their connection after any failure, so a broker
or server that comes back is picked up by the next poll. Library errors leave
as :class:`consumers.errors.SourceError` (Kafka) or
:class:`consumers.errors.SinkError` (ClickHouse), chained with ``from``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from consumers._kafka import kafka
from consumers.errors import ConfigError, SinkError, SourceError
from consumers.exporter import ClickHouseReading
from producers.kafka_transport import open_admin_client

__all__ = ["ClickHouseSystemStats", "KafkaAdminOffsets"]

# Kafka's error code for a topic the broker does not know.
_UNKNOWN_TOPIC_OR_PARTITION = 3
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class KafkaAdminOffsets:
    """Topic partitions, log offsets and a group's committed offsets, from the admin API."""

    def __init__(self, bootstrap: str, *, timeout_s: float, client_id: str = "runstream-exporter") -> None:
        self._bootstrap = bootstrap
        self._timeout_ms = max(1, int(timeout_s * 1000))
        self._client_id = client_id
        self._admin: Any = None

    def _client(self) -> Any:
        if self._admin is None:
            self._admin = open_admin_client(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                request_timeout_ms=self._timeout_ms,
                bootstrap_timeout_ms=self._timeout_ms,
            )
        return self._admin

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self._client(), *args, **kwargs)
        except Exception as exc:
            self.close()
            raise SourceError(f"kafka {what} failed: {type(exc).__name__}: {exc}") from exc

    def partitions(self, topic: str) -> list[int] | None:
        """Partition ids of ``topic``; None when the broker does not know it."""

        def describe(admin: Any) -> list[int] | None:
            [description] = admin.describe_topics([topic])
            code = description["error_code"]
            if code == _UNKNOWN_TOPIC_OR_PARTITION:
                return None
            if code != 0:
                raise RuntimeError(f"describe_topics({topic!r}) answered error code {code}")
            return sorted(p["partition_index"] for p in description["partitions"])

        result: list[int] | None = self._call("describe_topics", describe)
        return result

    def log_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """``partition -> (log start, end)`` offsets."""

        def offsets(admin: Any) -> dict[int, tuple[int, int]]:
            tps = [kafka.TopicPartition(topic, p) for p in partitions]
            spec = kafka.admin.OffsetSpec
            earliest = admin.list_partition_offsets({tp: spec.EARLIEST for tp in tps})
            latest = admin.list_partition_offsets({tp: spec.LATEST for tp in tps})
            return {tp.partition: (earliest[tp].offset, latest[tp].offset) for tp in tps}

        result: dict[int, tuple[int, int]] = self._call("list_partition_offsets", offsets)
        return result

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """``partition -> committed offset`` of ``group`` (-1 where it never committed)."""

        def fetch(admin: Any) -> dict[int, int]:
            tps = [kafka.TopicPartition(topic, p) for p in partitions]
            by_group = admin.list_group_offsets({group: tps})
            return {tp.partition: meta.offset for tp, meta in by_group.get(group, {}).items()}

        result: dict[int, int] = self._call("list_group_offsets", fetch)
        return result

    def close(self) -> None:
        """Close the admin client; the next call opens a new one."""
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()


class ClickHouseSystemStats:
    """Rows and active parts per table, and the newest scalar point, from system tables.

    ``url`` is the native-protocol URL the workers write to; its path names the
    runstream database. The connection itself opens on ``system`` so that a
    database not created yet reads as "no tables" instead of a failure.
    """

    def __init__(self, url: str, *, timeout_s: float) -> None:
        parts = urlsplit(url)
        database = parts.path.strip("/") or "default"
        if not _IDENTIFIER_RE.match(database):
            raise ConfigError(f"ClickHouse database must be an identifier, got {database!r}")
        self.database = database
        self._url = urlunsplit(parts._replace(path="/system"))
        self._timeout_s = timeout_s
        self._client: Any = None

    def _connection(self) -> Any:
        if self._client is None:
            from clickhouse_driver import Client

            client = Client.from_url(self._url)
            client.connection.connect_timeout = self._timeout_s
            client.connection.send_receive_timeout = self._timeout_s
            client.connection.sync_request_timeout = self._timeout_s
            self._client = client
        return self._client

    def read(self) -> ClickHouseReading:
        """One reading: every table of the database with its rows and active parts."""
        try:
            return self._read(self._connection())
        except Exception as exc:
            self.close()
            raise SinkError(f"clickhouse system tables: {type(exc).__name__}: {exc}") from exc

    def _read(self, client: Any) -> ClickHouseReading:
        settings = {"max_execution_time": max(1, int(self._timeout_s))}
        params = {"db": self.database}
        names = client.execute(
            "SELECT name FROM system.tables WHERE database = %(db)s", params, settings=settings
        )
        tables: dict[str, tuple[int, int]] = {str(name): (0, 0) for (name,) in names}
        parts = client.execute(
            "SELECT table, sum(rows), count() FROM system.parts"
            " WHERE database = %(db)s AND active GROUP BY table",
            params,
            settings=settings,
        )
        for table, rows, active in parts:
            tables[str(table)] = (int(rows), int(active))
        newest: int | None = None
        if "metric_scalars" in tables:
            # The database name is a checked identifier; values never enter the SQL text.
            [(count, max_ms)] = client.execute(
                f"SELECT count(), max(time_ms) FROM `{self.database}`.metric_scalars", settings=settings
            )
            # An empty table answers max() = 0 on old servers: count() tells them apart.
            newest = int(max_ms) if count else None
        return ClickHouseReading(tables=tables, newest_point_ms=newest)

    def close(self) -> None:
        """Disconnect; the next read connects again."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
