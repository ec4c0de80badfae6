"""Who may do what on a secure runstream broker: SCRAM credentials, topics and ACLs.

Run by ``deploy/local/kafka.sh`` in secure mode (``KAFKA_SECURE=1``) once the broker
answers, and by tests that need the same rights on topics of their own::

    python deploy/local/kafka/access.py --admin 127.0.0.1:9092 --secrets DIR \\
        [--events-topic runstream.events] [--dlq-topic runstream.events.dlq] \\
        [--group runstream-ingest] [--partitions 8] [--no-credentials]

``--admin`` is the broker's loopback PLAINTEXT listener, whose principal
(``User:ANONYMOUS``) is the super user of the local stack. Every step is
idempotent, so it runs on every start.

The principals (SASL/SCRAM-SHA-512 users), each with exactly the rights its
process needs (Kafka >= 3.0: WRITE on a topic implies IDEMPOTENT_WRITE; READ and
WRITE imply DESCRIBE):

- ``runstream-producer`` (the SDK, ``runstream spool replay``): WRITE the events
  topic. Nothing else: it cannot read, create topics or see other topics, so the
  topics are created here, by the admin.
- ``runstream-ingest``: READ the events topic, WRITE the dead-letter topic, READ
  (join, commit) its consumer group.
- ``runstream-exporter``: DESCRIBE the two topics and the group: partition lists,
  log offsets and committed offsets, never a message.

Passwords are read from ``<secrets>/<principal>.password`` (``kafka.sh`` makes
them); they never appear on a command line or in this script's output.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # kafka-python 3.0.12 loads its protocol schemas with a read_text deprecated on 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        NewTopic,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
    from kafka.errors import TopicAlreadyExistsError

PRODUCER = "runstream-producer"
INGEST = "runstream-ingest"
EXPORTER = "runstream-exporter"
PRINCIPALS = (PRODUCER, INGEST, EXPORTER)
SCRAM_ITERATIONS = 8192


def grants(events_topic: str, dlq_topic: str, group: str) -> list[tuple[str, ResourceType, str, ACLOperation]]:
    """(principal, resource type, resource name, operation) for every ALLOW ACL."""
    topic, grp = ResourceType.TOPIC, ResourceType.GROUP
    return [
        (PRODUCER, topic, events_topic, ACLOperation.WRITE),
        (INGEST, topic, events_topic, ACLOperation.READ),
        (INGEST, topic, dlq_topic, ACLOperation.WRITE),
        (INGEST, grp, group, ACLOperation.READ),
        (EXPORTER, topic, events_topic, ACLOperation.DESCRIBE),
        (EXPORTER, topic, dlq_topic, ACLOperation.DESCRIBE),
        (EXPORTER, grp, group, ACLOperation.DESCRIBE),
    ]


def _password(secrets: Path, principal: str) -> str:
    path = secrets / f"{principal}.password"
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SystemExit(f"kafka access: cannot read the password of {principal}: {exc}") from None
    if not password:
        raise SystemExit(f"kafka access: {path} is empty")
    return password


def set_credentials(admin: Any, secrets: Path) -> None:
    upserts = [
        UserScramCredentialUpsertion(p, ScramMechanism.SCRAM_SHA_512, _password(secrets, p),
                                     iterations=SCRAM_ITERATIONS)
        for p in PRINCIPALS
    ]
    failed = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
    if failed:
        raise SystemExit(f"kafka access: SCRAM credentials refused: {failed}")


def create_topics(admin: Any, names: list[str], partitions: int) -> None:
    missing = [name for name in names if name not in set(admin.list_topics())]
    if missing:
        try:
            admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing])
        except TopicAlreadyExistsError:
            pass


def set_acls(admin: Any, events_topic: str, dlq_topic: str, group: str) -> None:
    acls = [
        ACL(principal=f"User:{principal}", host="*", operation=operation,
            permission_type=ACLPermissionType.ALLOW, resource_pattern=ResourcePattern(rtype, name))
        for principal, rtype, name, operation in grants(events_topic, dlq_topic, group)
    ]
    result = admin.create_acls(acls)
    if result["failed"]:
        raise SystemExit(f"kafka access: ACLs refused: {result['failed']}")
    _wait_until_enforced(admin, set(acls))


def _wait_until_enforced(admin: Any, acls: set[Any], timeout_s: float = 15.0) -> None:
    """Return once the broker's authorizer holds every ACL in ``acls``.

    The controller commits an ACL before the broker applies it; a client that asks in
    between is refused (TopicAuthorizationFailed). DescribeAcls is answered from the
    broker's authorizer, so seeing them all there means they are enforced.
    """
    everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    deadline = time.monotonic() + timeout_s
    while True:
        found, _error = admin.describe_acls(everything)
        missing = acls - set(found)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"kafka access: {len(missing)} ACL(s) not enforced by the broker after {timeout_s:g}s")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="the loopback PLAINTEXT (super user) listener, host:port")
    parser.add_argument("--secrets", type=Path, help="folder of <principal>.password files")
    parser.add_argument("--events-topic", default="runstream.events")
    parser.add_argument("--dlq-topic", help="default: <events topic>.dlq")
    parser.add_argument("--group", default="runstream-ingest")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--no-credentials", action="store_true", help="topics and ACLs only")
    args = parser.parse_args(argv)
    dlq_topic = args.dlq_topic or f"{args.events_topic}.dlq"
    if not args.no_credentials and args.secrets is None:
        parser.error("--secrets is required unless --no-credentials")

    logging.getLogger("kafka").addHandler(logging.NullHandler())
    logging.getLogger("kafka").propagate = False
    admin = KafkaAdminClient(bootstrap_servers=args.admin, client_id="runstream-local-access",
                             request_timeout_ms=10000, bootstrap_timeout_ms=10000)
    try:
        if not args.no_credentials:
            set_credentials(admin, args.secrets)
        create_topics(admin, [args.events_topic, dlq_topic], args.partitions)
        set_acls(admin, args.events_topic, dlq_topic, args.group)
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
