import importlib
import inspect

import producers.hyperdrive as hyperdrive

MODULES = ["producers.hyperdrive", "producers.hyperdrive.parameters", "producers.hyperdrive.sampling",
           "producers.hyperdrive.goal", "producers.hyperdrive.policies", "producers.hyperdrive.config",
           "producers.hyperdrive.scheduler", "producers.hyperdrive.spec",
           "producers.hyperdrive.table", "producers.hyperdrive.launcher", "producers.hyperdrive.run",
           "producers.hyperdrive.stored"]


def test_public_names_are_pinned() -> None:
    assert sorted(hyperdrive.__all__) == sorted([
        "HyperDriveConfig", "PrimaryMetricGoal", "GridParameterSampling", "RandomParameterSampling", "choice",
        "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal",
        "qlognormal", "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy", "NoTerminationPolicy"])
    assert sorted(importlib.import_module("producers.hyperdrive.scheduler").__all__) == sorted([
        "Launch", "Stop", "SweepScheduler", "TRIAL_END_STATUSES"])
    assert sorted(importlib.import_module("producers.hyperdrive.run").__all__) == sorted([
        "HyperDriveRun", "start_sweep", "RUN_KIND", "POLICY_POLL_S"])
    assert sorted(importlib.import_module("producers.hyperdrive.stored").__all__) == sorted([
        "RUN_KIND", "HYPERPARAMETERS", "TRIAL_PROPERTIES", "SweepView", "sweep_view"])


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        assert module.__doc__, name
        for exported in module.__all__:
            obj = getattr(module, exported)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert getattr(obj, "__doc__", None), f"{name}.{exported} has no docstring"
