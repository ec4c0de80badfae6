"""Runs as a family (Azure ML's): parent, children, top-level listing, over a reader with canned runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from producers import Experiment, HyperDriveRun, Run, Workspace


def record(run_id, parent=None, kind="interactive", status="Completed"):
    return SimpleNamespace(run_id=run_id, parent_run_id=parent, display_name=None, kind=kind, status=status)


class Reader:
    """Newest first, as the store lists them."""

    def __init__(self):
        self.runs = [record("c2", "hd", "submitted", "Canceled"), record("g1", "c1", "child"),
                     record("c1", "hd", "submitted"), record("hd", kind="hyperdrive"), record("solo")]
        self.tags = {"c1": {"best": ""}, "c2": {}, "g1": {}}
        self.properties = {"c1": {"hyperparameters": '{"--alpha": 0.1}'}, "c2": {"hyperparameters": "{}"}, "g1": {}}

    def get_runs(self, experiment):
        return list(self.runs)

    def get_tags(self, run_id):
        return self.tags.get(run_id, {})

    def get_properties(self, run_id):
        return self.properties.get(run_id, {})


@pytest.fixture
def experiment(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    reader = Reader()
    monkeypatch.setattr(ws, "reader", lambda: reader)
    return Experiment(ws, "e")


def test_get_runs_lists_top_level_runs_unless_children_are_asked_for(experiment: Experiment) -> None:
    assert [r.id for r in experiment.get_runs()] == ["hd", "solo"]
    assert [r.id for r in experiment.get_runs(include_children=True)] == ["c2", "g1", "c1", "hd", "solo"]
    assert [r.id for r in experiment.get_runs(type="hyperdrive")] == ["hd"]
    assert [r.id for r in experiment.get_runs(include_children=True, tags="best")] == ["c1"]
    assert [r.id for r in experiment.get_runs(include_children=True,
                                              properties={"hyperparameters": "{}"})] == ["c2"]


def test_a_sweeps_run_reads_back_as_a_hyperdrive_run(experiment: Experiment) -> None:
    hd = next(r for r in experiment.get_runs() if r.id == "hd")
    assert isinstance(hd, HyperDriveRun) and hd.kind == "hyperdrive"
    assert not isinstance(next(r for r in experiment.get_runs() if r.id == "solo"), HyperDriveRun)


def test_children_oldest_first_recursive_and_filtered(experiment: Experiment) -> None:
    hd = Run._from_info(experiment, record("hd", kind="hyperdrive"))
    assert [c.id for c in hd.get_children()] == ["c1", "c2"]
    assert [c.id for c in hd.get_children(recursive=True)] == ["c1", "c2", "g1"]
    assert [c.id for c in hd.get_children(status="Canceled")] == ["c2"]
    assert [c.id for c in hd.get_children(recursive=True, type="child")] == ["g1"]
    child = next(hd.get_children())
    assert child.parent is not None and child.parent.id == "hd"


def test_a_live_child_run_knows_its_parent(ws: Workspace) -> None:
    with Experiment(ws, "e").start_logging() as parent:
        child = parent.child_run("step 1")
        assert child.parent is parent and child.kind == "child"
        child.complete()
