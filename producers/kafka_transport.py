"""The Kafka transport: kafka-python's idempotent producer, errors wrapped into :class:`TransportError`.

Messages are keyed by run id, so one run's events land in one partition in
the order they were sent; ``acks=all`` plus the idempotent producer keep
kafka-python's own retries from duplicating or reordering them. The topic is
created here when it is missing (brokers run with auto-creation off).

Used on its own it is a plain :class:`~producers.transport.EventTransport`;
:class:`~producers.failover.FailoverTransport` wraps it with the outbox spool
and uses :meth:`KafkaTransport.send_async` to track every acknowledgement.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from schemas.errors import ConfigurationError
from schemas.kafka_client import KafkaNetClient, ensure_topics, kafka, login, refusal

from .errors import TransportError

__all__ = ["KafkaTransport", "ensure_topic", "SendHandle", "is_poison"]

_log = logging.getLogger("runstream.kafka")

SendHandle = Any
"""kafka-python's ``FutureRecordMetadata``: ``is_done``, ``succeeded()``, ``failed()``, ``exception``."""


_POISON = (
    kafka.errors.MessageSizeTooLargeError,
    kafka.errors.RecordListTooLargeError,
    kafka.errors.InvalidRecordError,
    kafka.errors.CorruptRecordError,
)


def is_poison(exc: BaseException | None) -> bool:
    """True when the broker refused the message itself (too large, invalid): sending it again cannot work."""
    return isinstance(exc, _POISON)


def ensure_topic(
    options: Mapping[str, Any],
    topic: str,
    *,
    partitions: int,
    replication_factor: int = -1,
    timeout_s: float = 5.0,
) -> bool:
    """Create ``topic`` if the cluster lacks it; True when this call created it.

    Another process creating it at the same moment is fine. Raises
    :class:`TransportError` when the cluster cannot be reached.
    """
    try:
        created = ensure_topics(options, {topic: partitions}, replication_factor=replication_factor,
                                timeout_s=timeout_s, client_id="runstream-sdk-admin")
    except kafka.errors.KafkaError as exc:
        denied = refusal(exc, f"making sure topic {topic!r} exists (a producer principal may not create it: "
                              "create it as the admin)")
        if denied is not None:
            raise denied from exc
        raise TransportError(f"could not make sure Kafka topic {topic!r} exists: {exc}") from exc
    return bool(created)


class KafkaTransport:
    """Sends messages with an idempotent, lz4-compressing ``KafkaProducer`` (acks=all).

    Construction connects (bounded by ``connect_timeout_s``) and makes sure
    ``topic`` exists with ``partitions`` partitions; a broker that cannot be
    reached raises :class:`TransportError`. With TLS or SASL it first logs in
    once (:func:`schemas.kafka_client.login`): a refused certificate, password or
    permission raises :class:`~schemas.errors.AccessDenied`, which is not retried.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        topic: str,
        *,
        partitions: int = 8,
        replication_factor: int = -1,
        connect_timeout_s: float = 5.0,
        linger_ms: int = 5,
        client_id: str = "runstream-sdk",
        create_topic: bool = True,
    ) -> None:
        self.topic = topic
        self._failures: list[BaseException] = []
        self._failures_lock = threading.Lock()
        timeout_ms = int(connect_timeout_s * 1000)
        if not login(options, timeout_s=connect_timeout_s):
            raise TransportError(f"no Kafka broker of {options.get('bootstrap_servers')} answered")
        if create_topic:
            ensure_topic(options, topic, partitions=partitions, replication_factor=replication_factor,
                         timeout_s=connect_timeout_s)
        # kafka-python builds its network client before bootstrapping and drops it,
        # unclosed, when bootstrapping fails; keep a handle to close it ourselves.
        clients: list[Any] = []

        def client_factory(**configs: Any) -> Any:
            client = KafkaNetClient(**configs)
            clients.append(client)
            return client

        try:
            self._producer = kafka.KafkaProducer(
                **options,
                kafka_client=client_factory,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                compression_type="lz4",
                linger_ms=linger_ms,
                # The emitter already batches: a message holds up to a whole batch of points.
                batch_size=1024 * 1024,
                max_request_size=2 * 1024 * 1024,
                allow_auto_create_topics=False,
                request_timeout_ms=max(timeout_ms, 5000),
                # kafka-python retries on its own until then; the failover wrapper gives up far sooner.
                delivery_timeout_ms=120_000,
                # Never wait long for metadata on the emitter thread: the outbox takes over instead.
                max_block_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                # Notice a returning broker within a second.
                reconnect_backoff_max_ms=1000,
            )
        except BaseException as exc:
            for client in clients:
                try:
                    client.close()
                except Exception:  # best effort: the connection error is the one to report
                    pass
            if isinstance(exc, kafka.errors.KafkaError):
                raise TransportError(f"Kafka producer could not connect: {exc}") from exc
            if isinstance(exc, (TypeError, ValueError)):
                raise ConfigurationError(f"bad Kafka client settings: {exc}") from exc
            raise
        try:
            # Fetch the topic's metadata now, so the first send does not stall on it.
            self._producer.partitions_for(topic)
        except kafka.errors.KafkaError as exc:
            self.abort()
            raise TransportError(f"no metadata for topic {topic!r}: {exc}") from exc

    def send_async(self, topic: str, key: bytes, value: bytes) -> SendHandle:
        """Hand one message to the producer; returns its future (resolved when acknowledged or failed)."""
        try:
            return self._producer.send(topic, value=value, key=key)
        except kafka.errors.KafkaError as exc:
            raise TransportError(f"Kafka send failed: {exc}") from exc
        except AssertionError as exc:  # kafka-python asserts on a closed/aborted producer
            raise TransportError(f"Kafka producer unusable: {exc}") from exc

    @staticmethod
    def wait_for(futures: list[SendHandle], timeout: float | None) -> bool:
        """True when every future resolved (acknowledged or failed) within ``timeout`` seconds.

        Unlike ``KafkaProducer.flush``, whose timeout applies to each batch in
        turn, the deadline here is one deadline for all of them.
        """
        pending = [f for f in futures if not f.is_done]
        if not pending:
            return True
        resolved = threading.Event()
        lock = threading.Lock()
        left = [len(pending)]

        def one(_: object) -> None:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    resolved.set()

        for future in pending:
            future.add_callback(one)
            future.add_errback(one)
        return resolved.wait(timeout)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Send one message; a later delivery failure is reported by :meth:`flush`."""
        future = self.send_async(topic, key, value)
        future.add_errback(self._record_failure)

    def _record_failure(self, exc: BaseException) -> None:
        with self._failures_lock:
            self._failures.append(exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for every message sent so far to be acknowledged; False on timeout or a failed delivery."""
        try:
            self._producer.flush(timeout=timeout)
        except kafka.errors.KafkaTimeoutError:
            return False
        except kafka.errors.KafkaError as exc:
            _log.warning("Kafka flush failed: %s", exc)
            return False
        with self._failures_lock:
            failures, self._failures = self._failures, []
        for failure in failures[:3]:
            _log.warning("Kafka delivery failed: %s", failure)
        return not failures

    def close(self, timeout: float | None = 5.0) -> None:
        """Deliver what is pending (up to ``timeout``), then close the producer."""
        try:
            self._producer.close(timeout=timeout)
        except kafka.errors.KafkaError as exc:
            _log.warning("Kafka producer did not close cleanly (%s); aborting what is left", exc)
            self.abort()

    def abort(self) -> None:
        """Close at once: every message not yet acknowledged fails its future; nothing more is sent."""
        producer = self._producer
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            # kafka-python's close(timeout=0) raises before it force-closes (flush(0) times out
            # on pending batches), so force the sender first and close once it has stopped.
            sender.force_close()
            sender.join(5.0)
        try:
            producer.close(timeout=0)
        except Exception as exc:  # any failure here leaves nothing more to do
            _log.debug("Kafka producer abort: %s", exc)
