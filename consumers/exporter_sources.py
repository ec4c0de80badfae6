"""The exporter's adapters to the real Kafka and ClickHouse clients.

:class:`KafkaAdminOffsets` fulfils :class:`consumers.exporter.OffsetReader`
with kafka-python's ``KafkaAdminClient`` (``describe_topics``,
``list_partition_offsets``, ``list_group_offsets``: one client, no consumer
joins any group). :class:`ClickHouseSystemStats` fulfils
:class:`consumers.exporter.ClickHouseStats` with the store's ClickHouse adapter and
:mod:`store.health` (``system.tables`` / ``system.parts``, which every server version has).

Both connect lazily and drop their connection after any failure, so a broker
or server that comes back is picked up by the next poll. Library errors leave
as :class:`consumers.errors.SourceError` (Kafka) or
:class:`store.errors.StoreError` (ClickHouse), chained with ``from``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from schemas.kafka_client import kafka, login, open_admin_client
from schemas.secrets import Secret
from store.clickhouse import ClickHouseSettings, ClickHouseStore
from store.errors import StoreError
from store.health import TableHealth, read_table_health

from .errors import SourceError

__all__ = ["ClickHouseSystemStats", "KafkaAdminOffsets"]

# Kafka's error code for a topic the broker does not know.
_UNKNOWN_TOPIC_OR_PARTITION = 3


class KafkaAdminOffsets:
    """Topic partitions, log offsets and a group's committed offsets, from the admin API."""

    def __init__(self, bootstrap: str | Mapping[str, Any], *, timeout_s: float,
                 client_id: str = "runstream-exporter") -> None:
        """``bootstrap``: a bootstrap string, or kafka-python's connection settings (with TLS/SASL)."""
        self._options: dict[str, Any] = (
            {"bootstrap_servers": [b.strip() for b in bootstrap.split(",")]} if isinstance(bootstrap, str)
            else dict(bootstrap))
        self._timeout_ms = max(1, int(timeout_s * 1000))
        self._client_id = client_id
        self._admin: Any = None

    def _client(self) -> Any:
        if self._admin is None:
            # TLS and SASL first: a refused login is one clear AccessDenied, not a 30 s bootstrap timeout.
            if not login(self._options, timeout_s=self._timeout_ms / 1000):
                raise SourceError(f"no Kafka broker of {self._options['bootstrap_servers']} answered")
            self._admin = open_admin_client(
                **self._options,
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
    """Rows and active parts per table, and the newest scalar point (:func:`store.health.read_table_health`).

    ``url`` is the native-protocol URL the workers write to; its path names the
    runstream database. A database not created yet reads as "no tables".
    """

    def __init__(self, url: str, *, timeout_s: float, password: Secret | None = None) -> None:
        settings = ClickHouseSettings.from_url(url, password=password)
        self.database = settings.database
        self._settings = replace(settings, connect_timeout=timeout_s, send_receive_timeout=timeout_s)
        self._store: ClickHouseStore | None = None

    def read(self) -> TableHealth:
        """One reading: every table of the database with its rows and active parts."""
        if self._store is None:
            self._store = ClickHouseStore(self._settings)
        try:
            return read_table_health(self._store, self.database)
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        """Disconnect; the next read connects again."""
        store, self._store = self._store, None
        if store is not None:
            store.close()
