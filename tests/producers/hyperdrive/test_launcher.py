"""The launcher's loop with in-memory trials and metrics (the real child processes: tests/integration)."""

import threading

import pytest

from producers import ScriptRunConfig
from producers.hyperdrive import (
    BanditPolicy,
    GridParameterSampling,
    HyperDriveConfig,
    PrimaryMetricGoal,
    choice,
)
from producers.hyperdrive.launcher import SweepLauncher


class FakeTrial:
    def __init__(self, index, params):
        self.run_id = f"trial_{index}"
        self.params = params
        self.status = None
        self.error = None
        self.stop_reason = None
        self._ended = threading.Event()

    def wait(self, timeout=None):
        return self._ended.wait(timeout)

    def end(self, status, error=None):
        self.status, self.error = status, error
        self._ended.set()

    def request_stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason
            self.end("Canceled")


class Fakes:
    def __init__(self):
        self.trials = {}
        self.values = {}
        self.started = threading.Condition()
        self.events = []
        self.running_max = 0

    def start(self, index, params):
        trial = FakeTrial(index, params)
        with self.started:
            self.trials[index] = trial
            self.running_max = max(self.running_max, sum(t.status is None for t in self.trials.values()))
            self.started.notify_all()
        return trial

    def series(self, run_ids, name):
        return {r: list(self.values.get(r, [])) for r in run_ids}

    def wait_started(self, n):
        with self.started:
            assert self.started.wait_for(lambda: len(self.trials) >= n, timeout=5)


def config(policy=None, alphas=(0.0, 0.1, 0.3, 1.0), **kw):
    return HyperDriveConfig(run_config=ScriptRunConfig(".", "train.py"),
                            hyperparameter_sampling=GridParameterSampling({"--alpha": choice(*alphas)}),
                            primary_metric_name="mse", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                            policy=policy, **kw)


def launch(fakes, cfg, concurrent=2):
    launcher = SweepLauncher(cfg, seed=0, max_concurrent_runs=concurrent, start_trial=fakes.start, metrics=fakes,
                             on_event=fakes.events.append, poll_s=0.01)
    thread = threading.Thread(target=launcher.run, daemon=True)
    thread.start()
    return launcher, thread


def test_trials_run_at_most_n_at_once_and_failures_do_not_stop_the_sweep() -> None:
    fakes = Fakes()
    launcher, thread = launch(fakes, config(), concurrent=2)
    fakes.wait_started(2)
    assert len(fakes.trials) == 2
    fakes.trials[0].end("Failed", "Traceback...\nValueError: boom")
    fakes.wait_started(3)
    for index in (1, 2):
        fakes.trials[index].end("Completed")
    fakes.wait_started(4)
    fakes.values = {"trial_1": [0.5, 0.2], "trial_3": [0.4]}
    fakes.trials[3].end("Completed")
    assert launcher.wait(5)
    thread.join(5)
    assert launcher.status == "Completed" and fakes.running_max == 2
    rows = launcher.rows()
    assert [r.status for r in rows] == ["Failed", "Completed", "Completed", "Completed"]
    assert rows[0].note == "ValueError: boom" and rows[1].latest == 0.2
    assert [t.params for t in fakes.trials.values()] == [{"--alpha": a} for a in (0.0, 0.1, 0.3, 1.0)]
    kinds = [e.kind for e in fakes.events]
    assert kinds.count("launched") == 4 and kinds.count("ended") == 4
    best = [e for e in fakes.events if e.kind == "best"][-1]
    assert (best.run_id, best.value) == ("trial_1", 0.2)


def test_the_policy_stops_a_trial_with_its_reason() -> None:
    fakes = Fakes()
    launcher, thread = launch(fakes, config(BanditPolicy(slack_amount=0.1), alphas=(0.0, 0.1)), concurrent=2)
    fakes.wait_started(2)
    fakes.values = {"trial_0": [0.5], "trial_1": [0.9]}
    assert fakes.trials[1].wait(5)
    assert fakes.trials[1].stop_reason.startswith("BanditPolicy at interval 1")
    assert fakes.trials[0].status is None
    fakes.trials[0].end("Completed")
    assert launcher.wait(5)
    stopped = [e for e in fakes.events if e.kind == "stopped"]
    assert [(e.index, e.interval) for e in stopped] == [(1, 1)]
    assert launcher.rows()[1].status == "Canceled" and "BanditPolicy" in launcher.rows()[1].note


def test_cancel_stops_every_running_trial_and_launches_no_more() -> None:
    fakes = Fakes()
    launcher, thread = launch(fakes, config(), concurrent=3)
    fakes.wait_started(3)
    launcher.cancel("hd_run.cancel()")
    assert launcher.wait(5)
    assert launcher.status == "Canceled" and launcher.error == "hd_run.cancel()"
    assert len(fakes.trials) == 3 and all(t.stop_reason == "hd_run.cancel()" for t in fakes.trials.values())


def test_a_crashing_launcher_stops_its_trials() -> None:
    fakes = Fakes()
    calls = []

    def start(index, params):
        if index == 1:
            raise RuntimeError("cannot start")
        calls.append(index)
        return fakes.start(index, params)

    launcher = SweepLauncher(config(), seed=0, max_concurrent_runs=2, start_trial=start, metrics=fakes, poll_s=0.01)
    with pytest.raises(RuntimeError):
        launcher.run()
    assert launcher.status == "Failed" and "cannot start" in launcher.error
    assert fakes.trials[0].stop_reason.startswith("the sweep's launcher failed")
