"""A sweep written as data (a JSON/YAML file, or ``runstream sweep`` options): the same keys as HyperDriveConfig.

    {"experiment": "ridge", "source_directory": "src", "script": "train.py", "arguments": ["--epochs", 10],
     "sampling": "grid", "parameters": {"--alpha": "choice(0.0, 0.1, 0.3, 1.0)"},
     "primary_metric_name": "mse", "primary_metric_goal": "minimize",
     "max_total_runs": 20, "max_concurrent_runs": 4,
     "policy": "bandit(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)"}

Parameters are expression text (``"uniform(0.01, 0.1)"``), spec mappings
(``{"type": "uniform", "min_value": 0.01, "max_value": 0.1}``) or lists (a
choice). The policy is text, a mapping with ``type`` (``bandit``,
``median_stopping``, ``truncation_selection``, ``none``) or absent. Text is
parsed, never evaluated. Unknown keys are an error, not a silent typo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigurationError
from ..jobs.config import ScriptRunConfig
from .config import DEFAULT_MAX_DURATION_MINUTES, HyperDriveConfig
from .policies import policy_from_spec
from .sampling import sampling_from_spec

__all__ = ["SweepSpec", "SWEEP_KEYS", "sweep_from_mapping"]

SWEEP_KEYS = ("experiment", "source_directory", "script", "arguments", "environment", "sampling", "seed",
              "parameters", "primary_metric_name", "primary_metric_goal", "max_total_runs", "max_concurrent_runs",
              "max_duration_minutes", "policy")
"""Every key a sweep file may have."""


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A sweep file read: the experiment to submit to (None: the caller's default) and the config."""

    experiment: str | None
    config: HyperDriveConfig


def sweep_from_mapping(data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".") -> SweepSpec:
    """The sweep ``data`` describes; a relative ``source_directory`` is taken from ``base_dir`` (the file's folder)."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"a sweep file holds one object (mapping), got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in SWEEP_KEYS)
    if unknown:
        raise ConfigurationError(f"unknown sweep key(s) {', '.join(unknown)}; the keys are {', '.join(SWEEP_KEYS)}")
    for key in ("script", "sampling", "parameters", "primary_metric_name", "primary_metric_goal"):
        if data.get(key) is None:
            raise ConfigurationError(f"the sweep needs {key!r}")
    experiment = data.get("experiment")
    if experiment is not None and not isinstance(experiment, str):
        raise ConfigurationError(f"experiment must be a name, got {experiment!r}")
    source = Path(base_dir) / str(data.get("source_directory") or ".")
    arguments = data.get("arguments")
    if arguments is not None and (isinstance(arguments, (str, bytes)) or not isinstance(arguments, list)):
        raise ConfigurationError("arguments must be a list, e.g. ['--epochs', 10]")
    run_config = ScriptRunConfig(source_directory=str(source), script=str(data["script"]), arguments=arguments,
                                 environment=data.get("environment"))
    config = HyperDriveConfig(
        hyperparameter_sampling=sampling_from_spec(data["sampling"], data["parameters"],
                                                   seed=data.get("seed")),
        primary_metric_name=data["primary_metric_name"],
        primary_metric_goal=data["primary_metric_goal"],
        max_total_runs=data.get("max_total_runs"),
        max_concurrent_runs=data.get("max_concurrent_runs"),
        max_duration_minutes=data.get("max_duration_minutes", DEFAULT_MAX_DURATION_MINUTES),
        policy=policy_from_spec(data.get("policy")),
        run_config=run_config,
    )
    return SweepSpec(experiment=experiment, config=config)
