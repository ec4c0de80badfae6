import math

import pytest

from producers.errors import ConfigurationError
from producers.hyperdrive.goal import PrimaryMetricGoal, best_value, score


def test_parse_accepts_members_and_names() -> None:
    assert PrimaryMetricGoal.parse("Maximize") is PrimaryMetricGoal.MAXIMIZE
    assert PrimaryMetricGoal.parse(PrimaryMetricGoal.MINIMIZE) is PrimaryMetricGoal.MINIMIZE
    assert PrimaryMetricGoal.MAXIMIZE == "MAXIMIZE"
    with pytest.raises(ConfigurationError):
        PrimaryMetricGoal.parse("best")


def test_scores_are_higher_is_better_and_nan_is_worst() -> None:
    assert score(2.0, PrimaryMetricGoal.MINIMIZE) < score(1.0, PrimaryMetricGoal.MINIMIZE)
    assert score(math.nan, PrimaryMetricGoal.MINIMIZE) == -math.inf == score(math.nan, PrimaryMetricGoal.MAXIMIZE)
    assert best_value([3.0, math.nan, 1.0], PrimaryMetricGoal.MINIMIZE) == 1.0
    assert best_value([3.0, math.nan, 1.0], PrimaryMetricGoal.MAXIMIZE) == 3.0
    assert best_value([], PrimaryMetricGoal.MAXIMIZE) is None
