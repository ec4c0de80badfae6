import math

import pytest

from producers.errors import ConfigurationError, InvalidValueType
from producers.hyperdrive.goal import PrimaryMetricGoal
from producers.hyperdrive.policies import (
    BanditPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    PolicyEvaluator,
    TruncationSelectionPolicy,
    parse_policy,
    policy_from_spec,
)

MAX, MIN = PrimaryMetricGoal.MAXIMIZE, PrimaryMetricGoal.MINIMIZE


def test_applies_at_every_multiple_of_the_interval_from_the_delay_on() -> None:
    policy = BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)  # the example
    assert [n for n in range(1, 11) if policy.applies_at(n)] == [4, 6, 8, 10]
    assert [n for n in range(0, 6) if BanditPolicy(slack_amount=0.1).applies_at(n)] == [1, 2, 3, 4, 5]
    assert [n for n in range(1, 12) if MedianStoppingPolicy(3, 5).applies_at(n)] == [6, 9]
    assert not any(NoTerminationPolicy().applies_at(n) for n in range(10))


def test_bandit_slack_factor_maximize_is_azures_example() -> None:
    # Best trial 0.8 at the interval, slack_factor 0.2: trials whose best is below 0.8 / 1.2 = 0.667 stop.
    policy = BanditPolicy(slack_factor=0.2)
    series = {"best": [0.5, 0.8], "ok": [0.6, 0.67], "bad": [0.66, 0.6]}
    assert policy.threshold(0.8, MAX) == pytest.approx(0.8 / 1.2)
    assert policy.stop_reason("ok", 2, series, MAX) is None
    assert policy.stop_reason("best", 2, series, MAX) is None
    reason = policy.stop_reason("bad", 2, series, MAX, "auc")
    assert reason is not None and "auc 0.66" in reason and "best" in reason and "slack_factor 0.2" in reason


def test_bandit_slack_amount_and_minimize() -> None:
    amount = BanditPolicy(slack_amount=0.2)
    assert amount.stop_reason("x", 1, {"best": [0.8], "x": [0.59]}, MAX) is not None
    assert amount.stop_reason("x", 1, {"best": [0.8], "x": [0.6]}, MAX) is None      # level with the limit: runs
    assert amount.stop_reason("x", 1, {"best": [0.1], "x": [0.31]}, MIN) is not None
    assert amount.stop_reason("x", 1, {"best": [0.1], "x": [0.3]}, MIN) is None
    factor = BanditPolicy(slack_factor=0.1)
    assert factor.threshold(2.0, MIN) == pytest.approx(2.2)                          # mse: stop above best * 1.1
    assert factor.stop_reason("x", 1, {"best": [2.0], "x": [2.3]}, MIN) is not None
    assert factor.stop_reason("x", 1, {"best": [2.0], "x": [2.1]}, MIN) is None
    # A negative best: the slack points away from the best, never past it.
    assert factor.threshold(-1.0, MAX) == pytest.approx(-1.0 - 0.1 / 1.1)
    assert factor.threshold(-1.0, MIN) == pytest.approx(-0.9)


def test_bandit_uses_each_trials_best_up_to_the_interval_only() -> None:
    policy = BanditPolicy(slack_amount=0.1)
    # "old" reached 0.9 only at interval 3; the young trial at interval 2 is compared with old's first two values.
    series = {"old": [0.5, 0.6, 0.9], "young": [0.55, 0.52]}
    assert policy.stop_reason("young", 2, series, MAX) is None
    # Its best so far counts, not its latest value.
    assert policy.stop_reason("young", 2, {"old": [0.5, 0.65, 0.9], "young": [0.58, 0.1]}, MAX) is None
    assert policy.stop_reason("young", 2, {"old": [0.5, 0.7, 0.9], "young": [0.58, 0.1]}, MAX) is not None
    # Trials that have not reached the interval are not compared.
    assert policy.stop_reason("x", 3, {"x": [0.1, 0.1, 0.1], "short": [0.9, 0.9]}, MAX) is None


def test_nan_is_the_worst_value() -> None:
    policy = BanditPolicy(slack_amount=1.0)
    assert policy.stop_reason("x", 1, {"a": [0.5], "x": [math.nan]}, MAX) is not None
    assert policy.stop_reason("x", 1, {"a": [0.5], "x": [math.nan]}, MIN) is not None
    assert policy.stop_reason("x", 1, {"a": [math.nan], "x": [math.nan]}, MIN) is None
    assert MedianStoppingPolicy().stop_reason("x", 1, {"a": [1.0], "b": [2.0], "x": [math.nan]}, MAX) is not None


def test_median_stopping_compares_best_with_the_median_of_running_averages() -> None:
    policy = MedianStoppingPolicy()
    # Running averages at interval 2: a 0.5, b 0.35, c 0.15, x 0.2 -> median 0.275; x's best 0.25 is below.
    series = {"a": [0.4, 0.6, 1.0], "b": [0.3, 0.4], "c": [0.1, 0.2], "x": [0.25, 0.15]}
    reason = policy.stop_reason("x", 2, series, MAX, "acc")
    assert reason is not None and "0.275" in reason and "4 trials" in reason
    assert policy.stop_reason("b", 2, series, MAX) is None            # best 0.4 >= 0.275
    assert policy.stop_reason("c", 2, series, MAX) is not None        # best 0.2 < 0.275
    # Minimizing: the running averages of losses, and a best loss above their median stops.
    losses = {"a": [1.0, 0.5], "b": [2.0, 1.0], "x": [3.0, 2.5]}     # averages 0.75, 1.5, 2.75 -> median 1.5
    assert policy.stop_reason("x", 2, losses, MIN) is not None         # best 2.5 > 1.5
    assert policy.stop_reason("b", 2, losses, MIN) is None             # best 1.0
    # A lone trial is never worse than its own average.
    assert policy.stop_reason("a", 1, {"a": [0.3]}, MAX) is None


def test_truncation_selection_stops_the_lowest_percentage() -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=20)
    series = {f"t{i}": [float(i)] for i in range(10)}                  # 10 trials: the lowest 2 stop
    stopped = [t for t in series if policy.stop_reason(t, 1, series, MAX) is not None]
    assert stopped == ["t0", "t1"]
    stopped_min = [t for t in series if policy.stop_reason(t, 1, series, MIN) is not None]
    assert stopped_min == ["t8", "t9"]
    # Fewer trials than one in five at the interval: nothing to truncate.
    assert policy.stop_reason("t0", 1, {"t0": [0.0], "t1": [1.0], "t2": [2.0], "t3": [3.0]}, MAX) is None
    # Ties count in the trial's favour.
    tied = {f"t{i}": [1.0] for i in range(5)}
    assert all(policy.stop_reason(t, 1, tied, MAX) is None for t in tied)
    # Young trials are ranked on the intervals they reached, with older trials' values up to the same interval.
    series = {"old1": [0.1, 0.9], "old2": [0.2, 0.8], "old3": [0.3, 0.7], "old4": [0.4, 0.6], "young": [0.35]}
    assert policy.stop_reason("young", 1, series, MAX) is None
    assert policy.stop_reason("old1", 1, series, MAX) is not None


def test_policies_are_checked_at_construction() -> None:
    for call in (lambda: BanditPolicy(), lambda: BanditPolicy(slack_factor=0.1, slack_amount=0.1),
                 lambda: BanditPolicy(slack_factor=-0.1), lambda: BanditPolicy(0, slack_factor=0.1),
                 lambda: BanditPolicy(slack_factor=0.1, delay_evaluation=-1),
                 lambda: TruncationSelectionPolicy(0), lambda: TruncationSelectionPolicy(100),
                 lambda: MedianStoppingPolicy(evaluation_interval=1.5), lambda: MedianStoppingPolicy(True)):
        with pytest.raises(ConfigurationError):
            call()
    with pytest.raises(InvalidValueType):
        BanditPolicy(slack_factor="0.1")


def test_evaluator_evaluates_each_due_interval_once_and_stops_at_the_first_stop() -> None:
    policy = BanditPolicy(evaluation_interval=2, slack_amount=0.1, delay_evaluation=4)
    evaluator = PolicyEvaluator(policy, MAX, "acc")
    series = {"a": [0.1, 0.2, 0.3, 0.9, 0.9, 0.9], "b": [0.1, 0.2, 0.3]}
    results = evaluator.evaluate(series, ["a", "b"])                    # b has not reached 4; a is best at 4 and 6
    assert [(e.trial, e.interval, e.stop, e.reason) for e in results] == [("a", 4, False, None), ("a", 6, False, None)]
    assert evaluator.evaluate(series, ["a", "b"]) == []                 # nothing new
    series["a"] = series["a"] + [0.9, 0.9]
    results = evaluator.evaluate(series, ["a"])
    assert [(e.trial, e.interval, e.stop) for e in results] == [("a", 8, False)]
    series["b"] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]                  # b jumps from 3 to 7 values between polls
    results = evaluator.evaluate(series, ["b"])
    assert [(e.trial, e.interval, e.stop) for e in results] == [("b", 4, True)]
    assert results[0].reason is not None and "interval 4" in results[0].reason


def test_evaluator_runs_nothing_for_no_termination() -> None:
    evaluator = PolicyEvaluator(NoTerminationPolicy(), MIN, "loss")
    assert evaluator.evaluate({"a": [1.0] * 10, "b": [9.0] * 10}, ["a", "b"]) == []


def test_policy_spec_and_text_forms() -> None:
    bandit = BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)
    assert policy_from_spec(bandit.to_spec()) == bandit
    assert parse_policy("bandit(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)") == bandit
    assert parse_policy("BanditPolicy(2, 0.1, None, 4)") == bandit
    assert parse_policy("median_stopping") == MedianStoppingPolicy()
    assert parse_policy("MedianStoppingPolicy(evaluation_interval=3)") == MedianStoppingPolicy(3)
    assert parse_policy("truncation_selection(20, delay_evaluation=5)") == TruncationSelectionPolicy(20, 1, 5)
    assert policy_from_spec({"type": "truncation_selection", "truncation_percentage": 10}) \
        == TruncationSelectionPolicy(10)
    assert policy_from_spec(None) == NoTerminationPolicy() == parse_policy("none")
    for bad in ("bandit(slack=1)", "nope()", "bandit(slack_factor=__import__('os'))", {"type": "bandit"}):
        with pytest.raises(ConfigurationError):
            policy_from_spec(bad)
