"""Fixtures for the SDK's unit tests: an in-memory transport, a manual clock, an isolated workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from producers import Workspace
from producers import run as run_module
from producers.testing import InMemoryTransport, ManualClock


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's or CI's RUNSTREAM_* settings, a runstream.json above it, or another test's context run."""
    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG",
                "RUNSTREAM_RUN_ID", "RUNSTREAM_EXPERIMENT", "RUNSTREAM_PARENT_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_module, "_context_run", None)


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def ws(tmp_path: Path, transport: InMemoryTransport, clock: ManualClock) -> Iterator[Workspace]:
    workspace = Workspace(home=tmp_path / "home", transport=transport, clock=clock,
                          install_signal_handlers=False, linger_ms=5)
    yield workspace
    workspace.close(5.0)
