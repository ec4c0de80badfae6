import pytest

from producers import ScriptRunConfig
from producers.errors import ConfigurationError, InvalidValueType
from producers.hyperdrive import (
    BanditPolicy,
    GridParameterSampling,
    HyperDriveConfig,
    NoTerminationPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
    uniform,
)

SRC = ScriptRunConfig(source_directory="src", script="train.py", arguments=["--epochs", 3])
GRID = GridParameterSampling({"--alpha": choice(0.0, 0.1, 0.3, 1.0)})


def config(**overrides):
    kwargs = dict(run_config=SRC, hyperparameter_sampling=GRID, primary_metric_name="mse",
                  primary_metric_goal=PrimaryMetricGoal.MINIMIZE, max_total_runs=20, max_concurrent_runs=4)
    kwargs.update(overrides)
    return HyperDriveConfig(**kwargs)


def test_the_issue_example_builds() -> None:
    hd = config(policy=BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4))
    assert hd.total_runs == 4                         # the grid has 4 points; max_total_runs 20 leaves it whole
    assert hd.max_duration_minutes == 10080
    assert hd.to_spec()["policy"] == {"type": "bandit", "evaluation_interval": 2, "delay_evaluation": 4,
                                      "slack_factor": 0.1}
    assert config().policy == NoTerminationPolicy()
    assert config(primary_metric_goal="maximize").primary_metric_goal is PrimaryMetricGoal.MAXIMIZE
    assert config(max_total_runs=None).total_runs == 4
    assert config(max_total_runs=3).total_runs == 3


@pytest.mark.parametrize("overrides", [
    {"primary_metric_name": ""}, {"primary_metric_name": "x" * 256}, {"primary_metric_goal": "up"},
    {"max_total_runs": 0}, {"max_concurrent_runs": 0}, {"max_total_runs": 2.5}, {"max_concurrent_runs": True},
    {"max_duration_minutes": 0}, {"max_duration_minutes": float("inf")}, {"run_config": None},
    {"run_config": ScriptRunConfig("src", "train.py", arguments=["--alpha", "1"])},
    {"hyperparameter_sampling": RandomParameterSampling({"--lr": uniform(0, 1)}), "max_total_runs": None},
])
def test_bad_configs_fail_at_construction(overrides) -> None:
    with pytest.raises(ConfigurationError):
        config(**overrides)


@pytest.mark.parametrize("overrides", [
    {"hyperparameter_sampling": {"--alpha": choice(1)}}, {"policy": "bandit"}, {"run_config": "train.py"},
])
def test_wrong_types_fail_at_construction(overrides) -> None:
    with pytest.raises(InvalidValueType):
        config(**overrides)


def test_positional_order_is_azures() -> None:
    hd = HyperDriveConfig(GRID, "mse", PrimaryMetricGoal.MINIMIZE, 10, 2, 60, None, SRC)
    assert (hd.max_total_runs, hd.max_concurrent_runs, hd.max_duration_minutes) == (10, 2, 60)


def test_random_seed_is_exposed() -> None:
    hd = config(hyperparameter_sampling=RandomParameterSampling({"--lr": uniform(0, 1)}, seed=4))
    assert hd.seed == 4 and hd.total_runs == 20
    assert config().seed is None
