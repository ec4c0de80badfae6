import json

import pytest

from producers.errors import ConfigurationError
from producers.hyperdrive import BanditPolicy, GridParameterSampling, PrimaryMetricGoal, choice
from producers.hyperdrive.spec import SWEEP_KEYS, sweep_from_mapping

ISSUE = {"experiment": "ridge", "source_directory": "src", "script": "train.py", "arguments": ["--epochs", 10],
         "sampling": "grid", "parameters": {"--alpha": "choice(0.0, 0.1, 0.3, 1.0)"},
         "primary_metric_name": "mse", "primary_metric_goal": "minimize", "max_total_runs": 20,
         "max_concurrent_runs": 4, "policy": "bandit(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)"}


def test_the_issue_sweep_as_data(tmp_path) -> None:
    spec = sweep_from_mapping(json.loads(json.dumps(ISSUE)), base_dir=tmp_path)
    hd = spec.config
    assert spec.experiment == "ridge"
    assert hd.run_config.source_directory == str(tmp_path / "src")
    assert hd.run_config.arguments == ["--epochs", "10"]
    assert isinstance(hd.hyperparameter_sampling, GridParameterSampling)
    assert hd.hyperparameter_sampling.parameter_space == {"--alpha": choice(0.0, 0.1, 0.3, 1.0)}
    assert hd.primary_metric_goal is PrimaryMetricGoal.MINIMIZE
    assert hd.policy == BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)
    assert (hd.max_total_runs, hd.max_concurrent_runs) == (20, 4)


def test_spec_mappings_work_too(tmp_path) -> None:
    data = {**ISSUE, "sampling": "random", "seed": 3,
            "parameters": {"--lr": {"type": "loguniform", "min_value": -6, "max_value": -1}, "--k": [1, 2]},
            "policy": {"type": "median_stopping", "evaluation_interval": 1}}
    hd = sweep_from_mapping(data, base_dir=tmp_path).config
    assert hd.seed == 3 and hd.policy.name == "MedianStopping"


@pytest.mark.parametrize("change", [
    {"max_total_run": 3}, {"script": None}, {"sampling": None}, {"arguments": "--epochs 10"}, {"experiment": 3},
    {"parameters": ["--alpha"]},
])
def test_bad_files_fail_clearly(tmp_path, change) -> None:
    with pytest.raises(ConfigurationError):
        sweep_from_mapping({**ISSUE, **change}, base_dir=tmp_path)


def test_keys_are_the_config_names() -> None:
    assert {"max_total_runs", "max_concurrent_runs", "max_duration_minutes", "primary_metric_name",
            "primary_metric_goal", "policy"} <= set(SWEEP_KEYS)
