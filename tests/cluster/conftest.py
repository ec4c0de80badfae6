"""Fixtures for the fault tests on the local cluster (``make test-cluster``; by hand ``make cluster-up``).

- ``cluster``: the running cluster of ``deploy/local/cluster.sh`` (its ``env``:
  three brokers, four ClickHouse servers as 2 shards x 2 replicas, ZooKeeper),
  with ``kill``/``start`` of any node. When it is not ready, every test fails
  with a message saying how to start it; these tests never skip.
- After each test every node is running again, whatever the test did, so one
  failure does not cascade into the next test.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

# See tests/integration/conftest.py: kafka-python 3.0.12's import warns on Python 3.11.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    import kafka  # noqa: F401

from .harness import Cluster, ClusterNotReady


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return Cluster.from_script()
    except ClusterNotReady as exc:
        pytest.fail(f"{exc}\nThe cluster tests need the local cluster: run `make cluster-up` "
                    "(or `make test-cluster`, which starts it, runs them and stops it).", pytrace=False)


@pytest.fixture(autouse=True)
def _every_node_back(cluster: Cluster) -> Iterator[None]:
    yield
    cluster.start_all()
