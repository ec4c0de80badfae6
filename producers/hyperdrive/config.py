"""``HyperDriveConfig``: what a sweep runs, how it samples, what it optimizes, and its limits.

    HyperDriveConfig(run_config=ScriptRunConfig("src", "train.py"),
                     hyperparameter_sampling=GridParameterSampling({"--alpha": choice(0.0, 0.1)}),
                     policy=BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4),
                     primary_metric_name="mse", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                     max_total_runs=20, max_concurrent_runs=4)

Everything is checked at construction (``ConfigurationError``, a
``ValueError``; ``InvalidValueType``, a ``TypeError``), so a bad sweep fails
before any trial starts. Each trial runs ``run_config``'s script with its
arguments followed by the sampled parameters as ``name value`` pairs
(``train.py --epochs 10 --alpha 0.1``).

Limits, as in Azure ML: at most ``max_total_runs`` trials (fewer when the
space is smaller: a grid runs each combination once, so it may leave
``max_total_runs`` out), at most ``max_concurrent_runs`` at once (None: one
per CPU of this machine, runstream's "compute"), and the whole sweep stops
after ``max_duration_minutes`` (default 10080, 7 days), canceling the trials
still running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigurationError, InvalidValueType
from ..jobs.config import ScriptRunConfig
from ..run import Experiment
from .goal import PrimaryMetricGoal
from .policies import EarlyTerminationPolicy, NoTerminationPolicy
from .run import HyperDriveRun, start_sweep
from .sampling import ParameterSampling, RandomParameterSampling

__all__ = ["HyperDriveConfig", "DEFAULT_MAX_DURATION_MINUTES", "MAX_METRIC_NAME_LENGTH"]

DEFAULT_MAX_DURATION_MINUTES = 10080
"""Azure ML's default (and the longest it allows): 7 days."""

MAX_METRIC_NAME_LENGTH = 255
"""Azure ML's metric name length limit (``RunLimits.max_name_length``)."""


@dataclass(frozen=True)
class HyperDriveConfig:
    """A hyperparameter sweep of a script (Azure ML's ``HyperDriveConfig``; positional order as there)."""

    hyperparameter_sampling: ParameterSampling
    primary_metric_name: str
    primary_metric_goal: PrimaryMetricGoal
    max_total_runs: int | None = None
    max_concurrent_runs: int | None = None
    max_duration_minutes: float = DEFAULT_MAX_DURATION_MINUTES
    policy: EarlyTerminationPolicy | None = None
    run_config: ScriptRunConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.hyperparameter_sampling, ParameterSampling):
            raise InvalidValueType("hyperparameter_sampling must be GridParameterSampling(...) or "
                                   f"RandomParameterSampling(...), got {type(self.hyperparameter_sampling).__name__}")
        name = self.primary_metric_name
        if not isinstance(name, str) or not name or len(name) > MAX_METRIC_NAME_LENGTH:
            raise ConfigurationError(f"primary_metric_name must be the name the script logs (1-{MAX_METRIC_NAME_LENGTH}"
                                     f" characters), got {name!r}")
        object.__setattr__(self, "primary_metric_goal", PrimaryMetricGoal.parse(self.primary_metric_goal))
        for field_name in ("max_total_runs", "max_concurrent_runs"):
            value = getattr(self, field_name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{field_name} must be an int >= 1 (or None), got {value!r}")
        minutes = self.max_duration_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
                or minutes <= 0:
            raise ConfigurationError(f"max_duration_minutes must be a number > 0, got {minutes!r}")
        if self.policy is None:
            object.__setattr__(self, "policy", NoTerminationPolicy())
        elif not isinstance(self.policy, EarlyTerminationPolicy):
            raise InvalidValueType("policy must be BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy or "
                                   f"NoTerminationPolicy, got {type(self.policy).__name__}")
        if self.run_config is None:
            raise ConfigurationError("run_config is required: the ScriptRunConfig each trial runs")
        if not isinstance(self.run_config, ScriptRunConfig):
            raise InvalidValueType(f"run_config must be a ScriptRunConfig, got {type(self.run_config).__name__}")
        fixed = set(self.run_config.arguments or ())
        clash = [name for name in self.hyperparameter_sampling.parameter_space if name in fixed]
        if clash:
            raise ConfigurationError(f"parameter(s) {', '.join(clash)} are sampled and also in run_config.arguments; "
                                     "remove them from the arguments")
        if self.max_total_runs is None and self.hyperparameter_sampling.size() is None:
            raise ConfigurationError("max_total_runs is required: random sampling over a continuous parameter "
                                     "has no end")

    @property
    def total_runs(self) -> int:
        """How many trials the sweep launches at most: ``max_total_runs``, capped by the size of a finite space."""
        size = self.hyperparameter_sampling.size()
        limits = [n for n in (self.max_total_runs, size) if n is not None]
        return min(limits)

    @property
    def seed(self) -> int | None:
        """The random sampling's seed, if one was given."""
        sampling = self.hyperparameter_sampling
        return sampling.seed if isinstance(sampling, RandomParameterSampling) else None

    def submit_to(self, experiment: Experiment, tags: Mapping[str, str | None] | None = None) -> HyperDriveRun:
        """Start the sweep in ``experiment`` (what ``experiment.submit(config)`` calls); returns its run at once."""
        return start_sweep(experiment, self, tags)

    def to_spec(self) -> dict[str, Any]:
        """The sweep settings as JSON (no script: that is the run's own): stored on the sweep's run."""
        assert self.policy is not None
        return {**self.hyperparameter_sampling.to_spec(), "primary_metric_name": self.primary_metric_name,
                "primary_metric_goal": self.primary_metric_goal.value, "max_total_runs": self.max_total_runs,
                "max_concurrent_runs": self.max_concurrent_runs, "max_duration_minutes": self.max_duration_minutes,
                "policy": self.policy.to_spec()}
