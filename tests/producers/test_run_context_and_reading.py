"""Run.get_context() (submitted and unsubmitted) and the read methods' delegation to producers.reading."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from producers import ConfigurationError, Experiment, Run, Workspace
from producers import lifecycle
from producers import run as run_module
from producers.testing import InMemoryTransport
from schemas import RunStarted, RunStatusChanged, ScalarBatch


@pytest.fixture
def no_exit_callbacks(monkeypatch: pytest.MonkeyPatch) -> list:
    callbacks: list = []
    monkeypatch.setattr(lifecycle, "_exit_callbacks", callbacks)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    return callbacks


def test_get_context_outside_a_job_starts_a_run_named_after_the_script(
    ws: Workspace, transport: InMemoryTransport, monkeypatch: pytest.MonkeyPatch, no_exit_callbacks: list
) -> None:
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "/jobs/train model.py", raising=False)
    run = Run.get_context(ws)
    assert run.experiment.name == "train_model" and Run.get_context(ws) is run
    run.log("x", 1.0)
    assert len(no_exit_callbacks) == 1
    no_exit_callbacks[0]("exit")  # what happens at interpreter exit
    ws.flush()
    assert [e.status for e in transport.events(RunStatusChanged)] == ["Completed"]
    assert transport.events(RunStarted)[0].experiment == "train_model"


def test_get_context_fails_its_run_on_an_uncaught_exception(
    ws: Workspace, transport: InMemoryTransport, no_exit_callbacks: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "_uncaught", [])
    seen: list = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args))
    run = Run.get_context(ws)
    try:
        raise ValueError("diverged")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert seen  # the previous hook still runs
    no_exit_callbacks[0]("exit")
    ws.flush()
    (status,) = transport.events(RunStatusChanged)
    assert status.run_id == run.id and status.status == "Failed" and "ValueError: diverged" in status.error_details


def test_get_context_cancels_on_sigterm(ws: Workspace, transport: InMemoryTransport, no_exit_callbacks: list) -> None:
    Run.get_context(ws)
    no_exit_callbacks[0]("sigterm")
    ws.flush()
    assert [e.status for e in transport.events(RunStatusChanged)] == ["Canceled"]


def test_get_context_in_a_submitted_job_attaches_without_run_started(
    ws: Workspace, transport: InMemoryTransport, monkeypatch: pytest.MonkeyPatch, no_exit_callbacks: list
) -> None:
    monkeypatch.setenv("RUNSTREAM_RUN_ID", "job_123")
    monkeypatch.setenv("RUNSTREAM_EXPERIMENT", "sweep")
    monkeypatch.setenv("RUNSTREAM_PARENT_RUN_ID", "parent_9")
    run = Run.get_context(ws)
    assert run.id == "job_123" and run.experiment.name == "sweep" and run.kind == "submitted"
    assert run.parent is not None and run.parent.id == "parent_9"
    run.log("loss", 0.5)
    ws.flush()
    assert transport.events(RunStarted) == []
    (batch,) = transport.events(ScalarBatch)
    assert batch.run_id == "job_123" and batch.experiment == "sweep"
    assert no_exit_callbacks == []  # the job runner, not the script, ends a submitted run


def test_get_context_needs_the_experiment_with_the_run_id(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_RUN_ID", "job_123")
    with pytest.raises(ConfigurationError, match="RUNSTREAM_EXPERIMENT"):
        Run.get_context(ws)


def test_get_context_builds_a_default_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                no_exit_callbacks: list) -> None:
    monkeypatch.setenv("RUNSTREAM_RUN_ID", "job_1")
    monkeypatch.setenv("RUNSTREAM_EXPERIMENT", "e")
    monkeypatch.setenv("RUNSTREAM_HOME", str(tmp_path / "home"))
    run = Run.get_context()
    assert run.experiment.workspace.settings.home == tmp_path / "home"
    run.experiment.workspace.close()


class FakeReader:
    """Stands in for the store.RunReader that producers.reading.open_reader builds."""

    instances: list[FakeReader] = []

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.calls: list[tuple] = []
        FakeReader.instances.append(self)

    def wait_visible(self, run_id: str, writer_id: str, seq: int, timeout: float) -> None:
        self.calls.append(("wait_visible", run_id, writer_id, seq))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("get_") or name == "download_file":
            def method(*args: Any) -> Any:
                self.calls.append((name, *args))
                if name == "get_run":
                    if args[1] == "missing":
                        from producers.errors import RunNotFound

                        raise RunNotFound(args[1])
                    return {"run_id": args[1], "parent_run_id": "p", "display_name": "d", "status": "Completed"}
                if name == "get_runs":
                    return [types.SimpleNamespace(run_id="r1", parent_run_id=None, display_name=None,
                                                  status="Running", kind="interactive"),
                            {"run_id": "r2", "status": "Failed"}]
                return {"method": name, "args": args}
            return method
        raise AttributeError(name)


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> type[FakeReader]:
    module = types.ModuleType("producers.reading")
    module.open_reader = FakeReader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "producers.reading", module)
    FakeReader.instances = []
    return FakeReader


def test_read_methods_flush_wait_and_delegate(ws: Workspace, reader: type[FakeReader]) -> None:
    run = Experiment(ws, "e").start_logging()
    run.log("x", 1.0)
    assert run.get_metrics() == {"method": "get_metrics", "args": (run.id, None)}
    (fake,) = reader.instances
    assert fake.settings is ws.settings
    assert fake.calls[0] == ("wait_visible", run.id, ws.emitter.writer_id, ws.emitter.last_seq(run.id))
    assert ws.emitter.last_seq(run.id) == 2  # RunStarted, then the flushed ScalarBatch
    run.get_metrics(name="x")
    run.get_tags()
    run.get_properties()
    run.get_status()
    run.get_details()
    run.get_file_names()
    run.download_file("outputs/model.pt", "/tmp/model.pt")
    run.download_file("outputs/model.pt")
    methods = [c for c in fake.calls if c[0] != "wait_visible"]
    assert methods[1:] == [
        ("get_metrics", run.id, "x"), ("get_tags", run.id), ("get_properties", run.id), ("get_status", run.id),
        ("get_details", run.id), ("get_file_names", run.id), ("download_file", run.id, "outputs/model.pt", "/tmp/model.pt"),
        ("download_file", run.id, "outputs/model.pt", "model.pt"),
    ]


def test_run_constructor_reads_an_existing_run(ws: Workspace, reader: type[FakeReader]) -> None:
    exp = Experiment(ws, "e")
    run = Run(exp, "abc")
    assert run.id == "abc" and run.display_name == "d" and run.status == "Completed"
    assert run.parent is not None and run.parent.id == "p"
    from producers.errors import RunNotActive, RunNotFound

    run.log("x", 1.0)  # a completed run takes metrics, tags and properties (Azure ML, MLflow)
    run.tag("best")
    with pytest.raises(RunNotActive):
        run.complete()  # ...but its lifecycle is closed
    with pytest.raises(RunNotFound):
        Run(exp, "missing")
    with pytest.raises(LookupError):
        Run(exp, "missing")


def test_get_runs_yields_run_handles(ws: Workspace, reader: type[FakeReader]) -> None:
    runs = list(Experiment(ws, "e").get_runs())
    assert [r.id for r in runs] == ["r1", "r2"] and [r.status for r in runs] == ["Running", "Failed"]
    assert reader.instances[0].calls == [("get_runs", "e")]
