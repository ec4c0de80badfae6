"""The direction of a sweep's primary metric, and how values compare under it."""

from __future__ import annotations

import enum
import math
from typing import Any, Iterable

from ..errors import ConfigurationError

__all__ = ["PrimaryMetricGoal", "score", "best_value"]


class PrimaryMetricGoal(str, enum.Enum):
    """Whether the primary metric is maximized or minimized (Azure ML's values)."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @classmethod
    def parse(cls, value: Any) -> PrimaryMetricGoal:
        """A goal, or its name in any case ("maximize", "Minimize", ...)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ConfigurationError(f"primary_metric_goal must be PrimaryMetricGoal.MAXIMIZE or MINIMIZE "
                                 f"(or 'maximize'/'minimize'), got {value!r}")


def score(value: float, goal: PrimaryMetricGoal) -> float:
    """``value`` on a higher-is-better scale: itself when maximizing, negated when minimizing; NaN is the worst (-inf).

    A diverged trial logging NaN must lose every comparison, never win one.
    """
    if math.isnan(value):
        return -math.inf
    return value if goal is PrimaryMetricGoal.MAXIMIZE else -value


def best_value(values: Iterable[float], goal: PrimaryMetricGoal) -> float | None:
    """The best of ``values`` under ``goal`` (NaN only if all are NaN); None when there are none."""
    best: float | None = None
    for value in values:
        if best is None or score(value, goal) > score(best, goal):
            best = value
    return best
