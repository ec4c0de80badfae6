"""Early-termination policies, as Azure ML's HyperDrive defines them, as pure functions of the metric series.

An *interval* is one logged value of the primary metric: a trial that has
logged its primary metric N times has reached interval N. A policy is applied
to a trial at every interval N that is a multiple of ``evaluation_interval``
and at least ``delay_evaluation``. At interval N a trial is compared with every
trial of the sweep that has reached interval N (running or ended, itself
included), using only their first N values, so a young trial is never judged
against older trials' later progress:

- **BanditPolicy** (``slack_factor`` or ``slack_amount``): stop the trial if
  its best value up to N is not within the slack of the best trial's best value
  up to N. Maximizing with ``slack_factor`` f: stop below ``best / (1 + f)``
  (Azure ML's example: best 0.8, f 0.2 -> stop below 0.667); minimizing: stop
  above ``best * (1 + f)``. With ``slack_amount`` a: below ``best - a`` /
  above ``best + a``. (For a negative best the ratio is applied to its
  magnitude, so the slack always points away from the best.)
- **MedianStoppingPolicy**: stop the trial if its best value up to N is worse
  than the median of the trials' running averages over intervals 1..N.
- **TruncationSelectionPolicy** (``truncation_percentage`` X, 1-99): rank the
  trials by their best value up to N; stop the trial if it is among the lowest
  X% (its rank from the bottom, counting ties in its favour, is at most
  ``floor(k * X / 100)`` of the k trials at interval N).

Values compare by the goal; NaN is worse than any number. "Worse" is strict: a
trial level with the threshold (within float rounding) keeps running.

:class:`PolicyEvaluator` remembers which intervals of which trial were
evaluated, so a launcher can feed it the series as the store sees them, as
often as it likes, and act on the :class:`Evaluation` results.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigurationError, InvalidValueType
from .goal import PrimaryMetricGoal, score
from .parameters import call_from_text

__all__ = ["EarlyTerminationPolicy", "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy",
           "NoTerminationPolicy", "Evaluation", "PolicyEvaluator", "policy_from_spec", "parse_policy"]

Series = Mapping[str, Sequence[float]]
"""Trial id -> the primary metric's values in the order they were logged."""


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _scores_up_to(values: Sequence[float], interval: int, goal: PrimaryMetricGoal) -> list[float]:
    return [score(v, goal) for v in values[:interval]]


def _worse(own: float, limit: float) -> bool:
    """``own`` is below ``limit`` by more than float rounding (0.8 - 0.2 is 0.6000000000000001, and 0.6 is level)."""
    return own < limit and not math.isclose(own, limit, rel_tol=1e-9, abs_tol=1e-12)


def _value(score_: float, goal: PrimaryMetricGoal) -> float:
    return score_ if goal is PrimaryMetricGoal.MAXIMIZE else -score_


class EarlyTerminationPolicy:
    """When (``evaluation_interval``, ``delay_evaluation``) and by what rule trials are stopped."""

    name: str = ""
    """Azure ML's policy name: "Bandit", "MedianStopping", "TruncationSelection", "Default"."""
    evaluation_interval: int
    delay_evaluation: int

    def applies_at(self, interval: int) -> bool:
        """Whether the policy is applied when a trial reaches ``interval`` (its N-th primary metric value)."""
        return interval >= 1 and interval % self.evaluation_interval == 0 and interval >= self.delay_evaluation

    def stop_reason(self, trial: str, interval: int, series: Series, goal: PrimaryMetricGoal,
                    metric: str = "the primary metric") -> str | None:
        """Why ``trial`` must stop at ``interval`` given every trial's ``series``; None to let it run.

        ``series[trial]`` must have at least ``interval`` values.
        """
        if len(series[trial]) < interval:
            raise ValueError(f"trial {trial} has logged {len(series[trial])} values, fewer than interval {interval}")
        peers = {t: v for t, v in series.items() if len(v) >= interval}
        return self._reason(trial, interval, peers, goal, metric)

    def _reason(self, trial: str, interval: int, peers: Series, goal: PrimaryMetricGoal, metric: str) -> str | None:
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "bandit", "evaluation_interval": 1, ...}``."""
        raise NotImplementedError


@dataclass(frozen=True)
class BanditPolicy(EarlyTerminationPolicy):
    """Stop trials whose best primary metric is not within ``slack_factor`` (a ratio) or ``slack_amount`` of the
    best trial's (give exactly one)."""

    evaluation_interval: int = 1
    slack_factor: float | None = None
    slack_amount: float | None = None
    delay_evaluation: int = 0
    name = "Bandit"

    def __post_init__(self) -> None:
        _count(self.evaluation_interval, "BanditPolicy's evaluation_interval", 1)
        _count(self.delay_evaluation, "BanditPolicy's delay_evaluation", 0)
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ConfigurationError("BanditPolicy needs exactly one of slack_factor and slack_amount")
        slack = self.slack_factor if self.slack_factor is not None else self.slack_amount
        if isinstance(slack, bool) or not isinstance(slack, (int, float)):
            raise InvalidValueType(f"BanditPolicy's slack must be a number, got {slack!r}")
        if not math.isfinite(slack) or slack < 0:
            raise ConfigurationError(f"BanditPolicy's slack must be a finite number >= 0, got {slack!r}")

    def threshold(self, best: float, goal: PrimaryMetricGoal) -> float:
        """The worst value a trial may have when the best trial has ``best``."""
        if self.slack_amount is not None:
            allowed = self.slack_amount
        else:
            assert self.slack_factor is not None
            ratio = self.slack_factor / (1 + self.slack_factor) if goal is PrimaryMetricGoal.MAXIMIZE \
                else self.slack_factor
            allowed = abs(best) * ratio
        return best - allowed if goal is PrimaryMetricGoal.MAXIMIZE else best + allowed

    def _reason(self, trial: str, interval: int, peers: Series, goal: PrimaryMetricGoal, metric: str) -> str | None:
        bests = {t: max(_scores_up_to(v, interval, goal)) for t, v in peers.items()}
        leader = max(bests, key=lambda t: bests[t])
        if math.isinf(bests[leader]):
            return None  # no finite best (all NaN, or an infinite one): no slack can be computed
        best = _value(bests[leader], goal)
        limit = self.threshold(best, goal)
        own = bests[trial]
        if not _worse(own, score(limit, goal)):
            return None
        slack = f"slack_factor {self.slack_factor:g}" if self.slack_factor is not None \
            else f"slack_amount {self.slack_amount:g}"
        return (f"BanditPolicy at interval {interval}: best {metric} {_value(own, goal):g} is outside the "
                f"{slack} of the best trial ({leader}: {best:g}; limit {limit:g})")

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "bandit", "evaluation_interval": self.evaluation_interval,
                                "delay_evaluation": self.delay_evaluation}
        if self.slack_factor is not None:
            spec["slack_factor"] = self.slack_factor
        else:
            spec["slack_amount"] = self.slack_amount
        return spec


@dataclass(frozen=True)
class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Stop trials whose best primary metric up to interval N is worse than the median of the running averages
    over intervals 1..N."""

    evaluation_interval: int = 1
    delay_evaluation: int = 0
    name = "MedianStopping"

    def __post_init__(self) -> None:
        _count(self.evaluation_interval, "MedianStoppingPolicy's evaluation_interval", 1)
        _count(self.delay_evaluation, "MedianStoppingPolicy's delay_evaluation", 0)

    def _reason(self, trial: str, interval: int, peers: Series, goal: PrimaryMetricGoal, metric: str) -> str | None:
        averages = []
        for values in peers.values():
            scores = _scores_up_to(values, interval, goal)
            if -math.inf in scores:  # NaN (or an infinitely bad value) drags the average to the worst
                averages.append(-math.inf)
            else:
                averages.append(math.inf if math.inf in scores else math.fsum(scores) / interval)
        median = statistics.median(averages)
        own = max(_scores_up_to(peers[trial], interval, goal))
        if not _worse(own, median):
            return None
        return (f"MedianStoppingPolicy at interval {interval}: best {metric} {_value(own, goal):g} is worse than the "
                f"median of {len(averages)} trials' running averages ({_value(median, goal):g})")

    def to_spec(self) -> dict[str, Any]:
        return {"type": "median_stopping", "evaluation_interval": self.evaluation_interval,
                "delay_evaluation": self.delay_evaluation}


@dataclass(frozen=True)
class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Stop trials ranking in the lowest ``truncation_percentage`` percent at each evaluation."""

    truncation_percentage: int
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    name = "TruncationSelection"

    def __post_init__(self) -> None:
        _count(self.truncation_percentage, "TruncationSelectionPolicy's truncation_percentage", 1)
        if self.truncation_percentage > 99:
            raise ConfigurationError(f"TruncationSelectionPolicy's truncation_percentage must be 1-99, "
                                     f"got {self.truncation_percentage}")
        _count(self.evaluation_interval, "TruncationSelectionPolicy's evaluation_interval", 1)
        _count(self.delay_evaluation, "TruncationSelectionPolicy's delay_evaluation", 0)

    def _reason(self, trial: str, interval: int, peers: Series, goal: PrimaryMetricGoal, metric: str) -> str | None:
        bests = [max(_scores_up_to(v, interval, goal)) for v in peers.values()]
        own = max(_scores_up_to(peers[trial], interval, goal))
        cut = len(bests) * self.truncation_percentage // 100
        rank = sum(1 for b in bests if b <= own)  # from the bottom; ties count in the trial's favour
        if rank > cut:
            return None
        return (f"TruncationSelectionPolicy at interval {interval}: best {metric} {_value(own, goal):g} ranks "
                f"{rank} from the bottom of {len(bests)} trials; the lowest {self.truncation_percentage}% "
                f"({cut}) are stopped")

    def to_spec(self) -> dict[str, Any]:
        return {"type": "truncation_selection", "truncation_percentage": self.truncation_percentage,
                "evaluation_interval": self.evaluation_interval, "delay_evaluation": self.delay_evaluation}


@dataclass(frozen=True)
class NoTerminationPolicy(EarlyTerminationPolicy):
    """Never stop a trial early (the default)."""

    evaluation_interval: int = field(default=1, init=False)
    delay_evaluation: int = field(default=0, init=False)
    name = "Default"

    def applies_at(self, interval: int) -> bool:
        return False

    def _reason(self, trial: str, interval: int, peers: Series, goal: PrimaryMetricGoal, metric: str) -> str | None:
        return None

    def to_spec(self) -> dict[str, Any]:
        return {"type": "none"}


# -- the evaluator a launcher feeds --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One application of the policy to one trial at one interval."""

    trial: str
    interval: int
    stop: bool
    reason: str | None
    """Why the trial must stop (None when it may continue)."""


class PolicyEvaluator:
    """Applies a policy to running trials at each interval they reach, each (trial, interval) once.

    A launcher calls :meth:`evaluate` with the series as the store currently
    sees them; intervals a trial passed since the last call are evaluated in
    order, and evaluation of a trial ends at its first stop.
    """

    def __init__(self, policy: EarlyTerminationPolicy, goal: PrimaryMetricGoal, metric: str) -> None:
        self.policy = policy
        self.goal = goal
        self.metric = metric
        self._evaluated: dict[str, int] = {}

    def evaluate(self, series: Series, running: Iterable[str]) -> list[Evaluation]:
        """Evaluations of the ``running`` trials at the intervals they reached since the last call."""
        results: list[Evaluation] = []
        for trial in running:
            reached = len(series.get(trial, ()))
            start = self._evaluated.get(trial, 0)
            for interval in range(start + 1, reached + 1):
                self._evaluated[trial] = interval
                if not self.policy.applies_at(interval):
                    continue
                reason = self.policy.stop_reason(trial, interval, series, self.goal, self.metric)
                results.append(Evaluation(trial, interval, reason is not None, reason))
                if reason is not None:
                    break
        return results


# -- spec and text forms ------------------------------------------------------------------------------------------

_POLICIES: dict[str, type[EarlyTerminationPolicy]] = {
    "bandit": BanditPolicy, "median_stopping": MedianStoppingPolicy, "truncation_selection": TruncationSelectionPolicy,
    "none": NoTerminationPolicy,
}
_ALIASES = {"banditpolicy": "bandit", "median": "median_stopping", "medianstopping": "median_stopping",
            "medianstoppingpolicy": "median_stopping", "truncation": "truncation_selection",
            "truncationselection": "truncation_selection", "truncationselectionpolicy": "truncation_selection",
            "notermination": "none", "noterminationpolicy": "none", "default": "none"}


def _policy_class(name: Any) -> type[EarlyTerminationPolicy]:
    key = name.lower().replace("-", "_") if isinstance(name, str) else ""
    key = _ALIASES.get(key.replace("_", ""), key) if key not in _POLICIES else key
    cls = _POLICIES.get(key)
    if cls is None:
        raise ConfigurationError(f"policy type {name!r} is not one of {', '.join(_POLICIES)}")
    return cls


def _build(cls: type[EarlyTerminationPolicy], args: list[Any], kwargs: dict[str, Any], what: str
           ) -> EarlyTerminationPolicy:
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        if isinstance(exc, InvalidValueType):
            raise
        raise ConfigurationError(f"{what}: {exc}") from None


def policy_from_spec(spec: Any) -> EarlyTerminationPolicy:
    """A policy from its spec (``{"type": "bandit", "slack_factor": 0.1}``), its text
    (``"bandit(slack_factor=0.1, evaluation_interval=2)"``), a policy, or None (no termination)."""
    if spec is None:
        return NoTerminationPolicy()
    if isinstance(spec, EarlyTerminationPolicy):
        return spec
    if isinstance(spec, str):
        return parse_policy(spec)
    if not isinstance(spec, Mapping):
        raise InvalidValueType(f"policy must be a mapping with 'type', or text like 'bandit(slack_factor=0.1)', "
                               f"got {spec!r}")
    fields = dict(spec)
    return _build(_policy_class(fields.pop("type", None)), [], fields, f"policy {spec!r}")


def parse_policy(text: str) -> EarlyTerminationPolicy:
    """A policy written as text: ``"bandit(slack_factor=0.1, evaluation_interval=2, delay_evaluation=4)"``,
    ``"median_stopping()"``, ``"truncation_selection(20)"``, ``"none"``."""
    if isinstance(text, str) and "(" not in text:
        text = text.strip() + "()"
    name, args, kwargs = call_from_text(text, "policy")
    return _build(_policy_class(name), args, kwargs, f"policy {text!r}")
