import argparse
import json

import pytest

from producers.hyperdrive import BanditPolicy, PrimaryMetricGoal, choice
from producers.hyperdrive.spec import sweep_from_mapping
from runstream.cli import build_parser
from runstream.sweep_cmd import _split_script_args, normalize_argv, sweep_mapping
from schemas.errors import ConfigurationError


def parse(argv):
    args = build_parser(["sweep"]).parse_args(normalize_argv(argv))
    return args, _split_script_args(args)


def test_options_before_and_after_the_script_and_params_with_dashes(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args, script_args = parse(["sweep", "-e", "ridge", "--param", "--alpha=choice(0.0,0.1)", "train.py", "--epochs",
                               "10", "--sampling", "grid", "--param", "--k=choice(1,2,3)", "--primary-metric-name", "mse",
                               "--primary-metric-goal", "Minimize", "--policy", "bandit(slack_factor=0.1)",
                               "--", "--sampling", "x"])
    assert script_args == ["--epochs", "10", "--sampling", "x"]
    data, base = sweep_mapping(args, script_args)
    assert data["parameters"] == {"--alpha": "choice(0.0,0.1)", "--k": "choice(1,2,3)"}
    assert (data["experiment"], data["sampling"], data["primary_metric_goal"]) == ("ridge", "grid", "minimize")
    config = sweep_from_mapping(data, base_dir=base).config
    assert config.run_config.arguments == ["--epochs", "10", "--sampling", "x"]
    assert config.policy == BanditPolicy(slack_factor=0.1)


def test_options_override_the_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "conf").mkdir()
    sweep = tmp_path / "conf" / "sweep.yaml"
    sweep.write_text("experiment: ridge\nsource_directory: src\nscript: train.py\nsampling: grid\n"
                     "parameters: {--alpha: 'choice(0.0, 0.1, 0.3, 1.0)'}\nprimary_metric_name: mse\n"
                     "primary_metric_goal: minimize\nmax_total_runs: 20\nmax_concurrent_runs: 4\n"
                     "policy: 'bandit(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)'\n")
    monkeypatch.chdir(tmp_path)
    args, script_args = parse(["sweep", "--file", str(sweep), "--max-concurrent-runs", "2",
                               "--param", "--beta=choice(1, 2)"])
    data, base = sweep_mapping(args, script_args)
    config = sweep_from_mapping(data, base_dir=base).config
    assert config.max_concurrent_runs == 2 and config.max_total_runs == 20
    assert config.run_config.source_directory == str(tmp_path / "conf" / "src")
    assert config.hyperparameter_sampling.parameter_space == {"--alpha": choice(0.0, 0.1, 0.3, 1.0),
                                                              "--beta": choice(1, 2)}
    assert config.primary_metric_goal is PrimaryMetricGoal.MINIMIZE
    json_file = tmp_path / "sweep.json"
    json_file.write_text(json.dumps({"script": "t.py", "sampling": "random", "seed": 1,
                                     "parameters": {"--lr": "uniform(0, 1)"}, "primary_metric_name": "acc",
                                     "primary_metric_goal": "maximize", "max_total_runs": 3}))
    args, script_args = parse(["sweep", "-f", str(json_file)])
    assert sweep_from_mapping(*sweep_mapping(args, script_args)[:1], base_dir=tmp_path).config.seed == 1


def test_bad_files_and_params_are_refused(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    args, script_args = parse(["sweep", "-f", str(bad)])
    with pytest.raises(ConfigurationError):
        sweep_mapping(args, script_args)
    with pytest.raises(SystemExit):
        parse(["sweep", "--param", "alpha"])
    assert normalize_argv(["--param", "--a=choice(1)", "--", "--param", "x"]) == [
        "--param=--a=choice(1)", "--", "--param", "x"]
    assert isinstance(parse(["sweep", "t.py"])[0], argparse.Namespace)
