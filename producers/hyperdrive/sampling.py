"""How a sweep picks each trial's parameters: grid (every combination) or random (seeded).

    GridParameterSampling({"--alpha": choice(0.0, 0.1), "--l1": choice(True, False)})   # 4 trials
    RandomParameterSampling({"--lr": loguniform(-6, -1), "--batch": choice(16, 32)}, seed=7)

A sampling object only describes the space; :meth:`ParameterSampling.trials`
yields the parameter sets, lazily, in the order the trials are launched.
Grid order is ``itertools.product`` over the space in its insertion order (the
last parameter varies fastest). Random sampling draws each parameter
independently with ``random.Random(seed)``, so a seed gives the same trials
every time; when every parameter is discrete (``choice``/``randint``) it never
repeats a combination and ends when the space is used up.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Iterator, Mapping

from ..errors import ConfigurationError, InvalidValueType
from .parameters import Choice, ParameterExpression, ParameterValue, expression_from_spec

__all__ = ["ParameterSampling", "GridParameterSampling", "RandomParameterSampling", "sampling_from_spec",
           "MAX_PARAMETER_NAME_LENGTH"]

MAX_PARAMETER_NAME_LENGTH = 100
"""A parameter name is stored as a property key of the trial (Azure ML's limit: 100 characters)."""


def _check_space(space: Any, sampling: str) -> dict[str, ParameterExpression]:
    if not isinstance(space, Mapping):
        raise InvalidValueType(f"{sampling} takes a dict of parameter name -> expression, got {type(space).__name__}")
    if not space:
        raise ConfigurationError(f"{sampling}: the parameter space is empty")
    checked: dict[str, ParameterExpression] = {}
    for name, expression in space.items():
        if not isinstance(name, str) or not name or len(name) > MAX_PARAMETER_NAME_LENGTH \
                or any(ch.isspace() or ch == "\x00" for ch in name):
            raise ConfigurationError(f"{sampling}: parameter name {name!r} must be 1-{MAX_PARAMETER_NAME_LENGTH} "
                                     "characters without spaces (e.g. '--alpha')")
        if not isinstance(expression, ParameterExpression):
            raise InvalidValueType(f"{sampling}: parameter {name!r} must be an expression such as choice(...) or "
                                   f"uniform(...), got {expression!r}")
        checked[name] = expression
    return checked


class ParameterSampling:
    """A search space and the way trials are drawn from it."""

    algorithm: str = ""
    """"grid" or "random" (the ``sampling`` key of a sweep file)."""

    def __init__(self, parameter_space: Mapping[str, ParameterExpression]) -> None:
        self._space = _check_space(parameter_space, type(self).__name__)

    @property
    def parameter_space(self) -> dict[str, ParameterExpression]:
        """Parameter name -> expression, in the order given."""
        return dict(self._space)

    def size(self) -> int | None:
        """How many distinct parameter sets there are; None when unbounded (a continuous parameter)."""
        total = 1
        for expression in self._space.values():
            options = expression.options()
            if options is None:
                return None
            total *= len(options)
        return total

    def trials(self, *, seed: int) -> Iterator[dict[str, ParameterValue]]:
        """The parameter sets, in launch order (possibly without end); ``seed`` drives random draws."""
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """The JSON form: ``{"sampling": ..., "parameters": {name: expression spec}}``."""
        return {"sampling": self.algorithm, "parameters": {n: e.to_spec() for n, e in self._space.items()}}

    def __repr__(self) -> str:
        space = ", ".join(f"{name!r}: {expression}" for name, expression in self._space.items())
        return f"{type(self).__name__}({{{space}}})"


class GridParameterSampling(ParameterSampling):
    """Every combination of the ``choice`` options, each once (Azure ML: grid takes discrete parameters only)."""

    algorithm = "grid"

    def __init__(self, parameter_space: Mapping[str, ParameterExpression]) -> None:
        super().__init__(parameter_space)
        for name, expression in self._space.items():
            if not isinstance(expression, Choice):
                raise ConfigurationError(f"GridParameterSampling: parameter {name!r} is {expression}; grid sampling "
                                         "takes choice(...) only (use RandomParameterSampling for distributions)")

    def trials(self, *, seed: int = 0) -> Iterator[dict[str, ParameterValue]]:
        """Every combination, the last parameter varying fastest; ``seed`` is unused."""
        names = list(self._space)
        columns = [self._space[name].options() or () for name in names]
        for values in itertools.product(*columns):
            yield dict(zip(names, values))


class RandomParameterSampling(ParameterSampling):
    """Random draws from the space; ``seed`` (or ``properties={"seed": n}``) makes them repeatable.

    Without a seed, the launcher picks one and records it on the sweep's run,
    so any sweep can be replayed.
    """

    algorithm = "random"

    def __init__(self, parameter_space: Mapping[str, ParameterExpression],
                 properties: Mapping[str, Any] | None = None, *, seed: int | None = None) -> None:
        super().__init__(parameter_space)
        if properties is not None and not isinstance(properties, Mapping):
            raise InvalidValueType("properties must be a dict")
        self.properties = dict(properties or {})
        """Azure ML's extra sampling properties; runstream reads ``seed`` from them when ``seed=`` is not given."""
        if seed is None:
            seed = self.properties.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigurationError(f"RandomParameterSampling: seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        """The random seed, or None (the launcher picks one)."""

    def trials(self, *, seed: int) -> Iterator[dict[str, ParameterValue]]:
        """Independent draws from ``random.Random(seed)``; a finite space yields each combination at most once."""
        rng = random.Random(seed)
        size = self.size()
        seen: set[tuple[tuple[type, ParameterValue], ...]] = set()
        while size is None or len(seen) < size:
            values = {name: expression.sample(rng) for name, expression in self._space.items()}
            if size is not None:
                key = tuple((type(v), v) for v in values.values())
                if key in seen:
                    continue  # rejection: cheap while the space is far from used up, and it always is by max_total_runs
                seen.add(key)
            yield values

    def to_spec(self) -> dict[str, Any]:
        spec = super().to_spec()
        if self.seed is not None:
            spec["seed"] = self.seed
        return spec

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", seed={self.seed!r})"


def sampling_from_spec(algorithm: Any, parameters: Any, *, seed: Any = None) -> ParameterSampling:
    """A sampling from a sweep file's ``sampling`` ("grid"/"random"), ``parameters`` (name -> expression text or
    spec) and ``seed``."""
    if not isinstance(parameters, Mapping):
        raise ConfigurationError("parameters must be a mapping of name -> expression, e.g. "
                                 "{'--alpha': 'choice(0.0, 0.1)'}")
    space = {name: expression_from_spec(spec) for name, spec in parameters.items()}
    kind = algorithm.lower() if isinstance(algorithm, str) else algorithm
    if kind == "grid":
        if seed is not None:
            raise ConfigurationError("seed applies to random sampling only")
        return GridParameterSampling(space)
    if kind == "random":
        return RandomParameterSampling(space, seed=seed)
    raise ConfigurationError(f"sampling must be 'grid' or 'random', got {algorithm!r} "
                             "(Bayesian sampling is not supported)")

