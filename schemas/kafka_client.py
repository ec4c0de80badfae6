"""kafka-python as every runstream process uses it: one import, an admin client, topic creation.

- kafka-python 3.0.12 reads its protocol files with ``importlib.resources.read_text``,
  deprecated on Python 3.11; importing it here, once, with that warning silenced keeps
  it out of users' output and out of the test suite's ``filterwarnings = error``.
- :func:`open_admin_client` leaves nothing running when the broker cannot be reached.
- :func:`ensure_topics` creates missing topics (runstream's brokers run with
  auto-creation off, and runstream never relies on it).
- :func:`login` checks TLS and SASL once, with one clear error
  (:mod:`schemas.kafka_login`: kafka-python would retry a refused login until
  it times out), and :func:`refusal` turns kafka-python's "not authorized"
  errors into :class:`NotAuthorized`; both are :class:`~schemas.errors.AccessDenied`,
  which no caller retries.

Only processes that talk to Kafka import this module; ``import schemas`` does not.
Errors are kafka-python's own (``kafka.errors.KafkaError``): each caller wraps them
into its side of the error tree.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    import kafka
    import kafka.admin
    import kafka.errors
    import kafka.structs
    from kafka.net.compat import KafkaNetClient

from .errors import AccessDenied
from .kafka_login import AuthenticationFailed, check_kafka_login
from .secrets import RedactingFilter

__all__ = ["kafka", "KafkaNetClient", "NotAuthorized", "open_admin_client", "ensure_topics", "login", "refusal"]

_log = logging.getLogger("runstream.kafka")
# kafka-python's admin client logs its whole configuration, SASL password included, at DEBUG.
logging.getLogger("kafka.admin.client").addFilter(RedactingFilter())


class NotAuthorized(AccessDenied):
    """Kafka refused an operation to the principal this process logged in as (an ACL is missing)."""


def login(options: Mapping[str, Any], *, timeout_s: float = 10.0) -> bool:
    """Check TLS and SASL of ``options`` (kafka-python's, with ``bootstrap_servers``) once.

    True when a broker accepted the login (or nothing needs checking), False when
    none answered (an outage); :class:`~schemas.errors.AccessDenied` when refused.
    """
    return check_kafka_login(options["bootstrap_servers"], options, timeout_s=timeout_s)


def refusal(exc: BaseException, what: str) -> AccessDenied | None:
    """The :class:`~schemas.errors.AccessDenied` that ``exc`` means, or None when it means something else."""
    if isinstance(exc, AccessDenied):
        return exc
    if isinstance(exc, kafka.errors.AuthorizationError):
        return NotAuthorized(f"Kafka refused {what}: {type(exc).__name__}: {exc} (this principal lacks an ACL "
                             "for it; see README, Security)")
    if isinstance(exc, kafka.errors.SaslAuthenticationFailedError):
        return AuthenticationFailed(f"Kafka refused the SASL login for {what}: {exc}")
    return None


def open_admin_client(**configs: Any) -> Any:
    """A connected ``KafkaAdminClient``; nothing left running when it cannot connect.

    kafka-python 3.0.12 starts the client's IO thread in ``__init__`` before it
    bootstraps, and a failed bootstrap raises without stopping that thread: a
    caller retrying against a dead broker (the outbox replayer, the exporter's
    polls) would gain a thread and its sockets per attempt. Building the object
    first keeps a handle to stop them. kafka-python's own error is re-raised.
    """
    admin = kafka.admin.KafkaAdminClient.__new__(kafka.admin.KafkaAdminClient)
    try:
        admin.__init__(**configs)
    except BaseException:
        for part, method in (("_client", "close"), ("_net", "stop"), ("_metrics", "close")):
            target = getattr(admin, part, None)
            if target is not None:
                try:
                    getattr(target, method)()
                except Exception:  # best effort: the bootstrap error is the one to report
                    pass
        raise
    return admin


def ensure_topics(options: Mapping[str, Any], topics: Mapping[str, int], *, replication_factor: int = -1,
                  timeout_s: float = 5.0, client_id: str = "runstream-admin") -> list[str]:
    """Create the ``topics`` (name -> partitions) the cluster lacks; returns the ones this call created.

    ``options`` are the kafka-python connection settings (``bootstrap_servers``,
    TLS/SASL). Another process creating a topic at the same moment is fine.
    ``replication_factor`` -1 means the broker's default.
    """
    timeout_ms = int(timeout_s * 1000)
    admin = open_admin_client(**options, client_id=client_id, request_timeout_ms=timeout_ms,
                              bootstrap_timeout_ms=timeout_ms)
    try:
        existing = set(admin.list_topics())
        created = []
        for topic, partitions in topics.items():
            if topic in existing:
                continue
            try:
                admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": replication_factor}},
                                    timeout_ms=timeout_ms, wait_for_metadata=True)
            except kafka.errors.TopicAlreadyExistsError:
                continue  # another process created it a moment ago
            _log.info("created Kafka topic %s with %d partitions", topic, partitions)
            created.append(topic)
        return created
    finally:
        admin.close()
