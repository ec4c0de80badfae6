"""A private pipeline on the shared stack: a fresh topic and database with one ``runstream ingest`` writing it.

For tests parametrized over the embedded default and the stack (submitted jobs,
sweeps): the stack side gets its own topic, database and ingest worker, so the
tests' runs never meet another test's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from consumers.testing import create_topic
from runstream.testing import IngestProcess

__all__ = ["backend_settings", "private_pipeline"]


@contextmanager
def private_pipeline(base: Path, bootstrap: str, clickhouse_url: str, prefix: str) -> Iterator[dict[str, str]]:
    """Yields the ``RUNSTREAM_*`` settings of a client (home ``base/home``) of a new topic + database ``prefix_*``.

    On a clean exit the worker must stop with status 0 (whatever the body
    logged has been written by then); on every exit it is killed and the
    database dropped.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + name
    create_topic(bootstrap, name, 4)
    worker = IngestProcess(["--kafka", bootstrap, "--clickhouse", url, "--topic", name, "--group", name,
                            "--dlq-topic", name + ".dlq", "--flush-interval", "0.1", "--home", str(base / "ingest")],
                           base / "worker.log").start()
    try:
        yield {"RUNSTREAM_HOME": str(base / "home"), "RUNSTREAM_KAFKA": bootstrap, "RUNSTREAM_CLICKHOUSE": url,
               "RUNSTREAM_TOPIC": name}
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
        from clickhouse_driver import Client

        client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
        client.execute(f"DROP DATABASE IF EXISTS `{name}`")
        client.disconnect()


@contextmanager
def backend_settings(request: pytest.FixtureRequest, base: Path, prefix: str) -> Iterator[dict[str, str]]:
    """The ``RUNSTREAM_*`` settings of a client (home ``base/home``) of the backend ``request.param`` names.

    ``"embedded"``: the default, spool + chDB in the home; ``"stack"``: a
    :func:`private_pipeline` on the shared stack (the ``kafka_bootstrap`` and
    ``clickhouse_url`` fixtures).
    """
    if request.param == "embedded":
        yield {"RUNSTREAM_HOME": str(base / "home")}
        return
    with private_pipeline(base, request.getfixturevalue("kafka_bootstrap"), request.getfixturevalue("clickhouse_url"),
                          prefix) as env:
        yield env
