"""Parameter expressions of a sweep's search space, with Azure ML's names and meanings.

    {"--alpha": choice(0.0, 0.1, 0.3), "--lr": loguniform(-6, -1), "--batch": quniform(16, 128, 16)}

=============================  ===================================================================
``choice(*options)``           one of the options (``choice(1, 2)`` or ``choice([1, 2])``)
``randint(upper)``             an integer in ``[0, upper)``
``uniform(lo, hi)``            uniform between ``lo`` and ``hi``
``quniform(lo, hi, q)``        ``round(uniform(lo, hi) / q) * q``
``loguniform(lo, hi)``         ``exp(uniform(lo, hi))``: its logarithm is uniform (bounds are logs)
``qloguniform(lo, hi, q)``     ``round(exp(uniform(lo, hi)) / q) * q``
``normal(mu, sigma)``          normal with mean ``mu``, standard deviation ``sigma``
``qnormal(mu, sigma, q)``      ``round(normal(mu, sigma) / q) * q``
``lognormal(mu, sigma)``       ``exp(normal(mu, sigma))``
``qlognormal(mu, sigma, q)``   ``round(exp(normal(mu, sigma)) / q) * q``
=============================  ===================================================================

Quantized values are floats, as in Azure ML, except when ``q`` is an int: then
they are ints (so ``quniform(16, 128, 16)`` gives ``--batch 48``, which
``argparse``'s ``type=int`` accepts). Grid sampling takes ``choice`` only.

Every expression has a spec form for JSON/YAML files and run properties
(``{"type": "uniform", "min_value": 0.0, "max_value": 1.0}``, Azure ML v2's
field names) and a text form (``"uniform(0.0, 1.0)"``) that
:func:`parse_expression` reads back without evaluating code.
"""

from __future__ import annotations

import ast
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from ..errors import ConfigurationError, InvalidValueType

__all__ = ["ParameterValue", "ParameterExpression", "Choice", "RandInt", "Uniform", "QUniform", "LogUniform",
           "QLogUniform", "Normal", "QNormal", "LogNormal", "QLogNormal", "choice", "randint", "uniform", "quniform",
           "loguniform", "qloguniform", "normal", "qnormal", "lognormal", "qlognormal", "parse_expression",
           "expression_from_spec", "call_from_text"]

ParameterValue = Union[int, float, str, bool]
"""A sampled value: what a choice option may be, and what the script receives (as text)."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValueType(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{what} must be finite, got {value!r}")
    return float(value)


def _positive(value: Any, what: str) -> float:
    number = _number(value, what)
    if number <= 0:
        raise ConfigurationError(f"{what} must be > 0, got {value!r}")
    return number


def _quantize(value: float, q: int | float) -> int | float:
    steps = round(value / q)
    return int(steps * q) if isinstance(q, int) else steps * q


class ParameterExpression:
    """A distribution (or list of options) one parameter is sampled from."""

    kind: str = ""
    """Azure ML's name of the expression: "choice", "uniform", ..."""

    def sample(self, rng: random.Random) -> ParameterValue:
        """One value drawn with ``rng``."""
        raise NotImplementedError

    def options(self) -> tuple[ParameterValue, ...] | None:
        """Every value it can take, when they are finitely many (choice, randint); else None."""
        return None

    def to_spec(self) -> dict[str, Any]:
        """The JSON form: ``{"type": kind, <field>: value, ...}``."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in self._fields()}
        if "values" in fields:
            fields["values"] = list(fields["values"])
        return {"type": self.kind, **fields}

    def _fields(self) -> tuple[str, ...]:
        return tuple(self.__dataclass_fields__)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        values = self.options() if isinstance(self, Choice) else tuple(getattr(self, f) for f in self._fields())
        return f"{self.kind}({', '.join(repr(v) for v in values or ())})"


@dataclass(frozen=True, slots=True)
class Choice(ParameterExpression):
    """``choice(*options)``: one of the options (numbers, strings or bools)."""

    values: tuple[ParameterValue, ...]
    kind = "choice"

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigurationError("choice() needs at least one option")
        seen: set[tuple[type, ParameterValue]] = set()
        for value in self.values:
            if not isinstance(value, (int, float, str, bool)):
                raise InvalidValueType(f"choice options must be numbers, strings or bools, got {value!r}")
            if isinstance(value, float) and math.isnan(value):
                raise ConfigurationError("choice options cannot be NaN")
            if (type(value), value) in seen:
                raise ConfigurationError(f"choice option {value!r} is listed twice")
            seen.add((type(value), value))

    def sample(self, rng: random.Random) -> ParameterValue:
        return self.values[rng.randrange(len(self.values))]

    def options(self) -> tuple[ParameterValue, ...]:
        return self.values


@dataclass(frozen=True, slots=True)
class RandInt(ParameterExpression):
    """``randint(upper)``: an integer in ``[0, upper)``."""

    upper: int
    kind = "randint"

    def __post_init__(self) -> None:
        if isinstance(self.upper, bool) or not isinstance(self.upper, int) or self.upper < 1:
            raise ConfigurationError(f"randint(upper) needs an int upper >= 1, got {self.upper!r}")

    def sample(self, rng: random.Random) -> int:
        return rng.randrange(self.upper)

    def options(self) -> tuple[ParameterValue, ...]:
        return tuple(range(self.upper))


@dataclass(frozen=True, slots=True)
class Uniform(ParameterExpression):
    """``uniform(min_value, max_value)``."""

    min_value: float
    max_value: float
    kind = "uniform"

    def __post_init__(self) -> None:
        _bounds(self.kind, self.min_value, self.max_value)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min_value, self.max_value)


@dataclass(frozen=True, slots=True)
class QUniform(ParameterExpression):
    """``quniform(min_value, max_value, q)``: ``round(uniform(min_value, max_value) / q) * q``."""

    min_value: float
    max_value: float
    q: int | float
    kind = "quniform"

    def __post_init__(self) -> None:
        _bounds(self.kind, self.min_value, self.max_value)
        _positive(self.q, f"{self.kind}'s q")

    def sample(self, rng: random.Random) -> int | float:
        return _quantize(rng.uniform(self.min_value, self.max_value), self.q)


@dataclass(frozen=True, slots=True)
class LogUniform(ParameterExpression):
    """``loguniform(min_value, max_value)``: ``exp(uniform(min_value, max_value))``; the bounds are logarithms."""

    min_value: float
    max_value: float
    kind = "loguniform"

    def __post_init__(self) -> None:
        _bounds(self.kind, self.min_value, self.max_value)

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.uniform(self.min_value, self.max_value))


@dataclass(frozen=True, slots=True)
class QLogUniform(ParameterExpression):
    """``qloguniform(min_value, max_value, q)``: ``round(exp(uniform(min_value, max_value)) / q) * q``."""

    min_value: float
    max_value: float
    q: int | float
    kind = "qloguniform"

    def __post_init__(self) -> None:
        _bounds(self.kind, self.min_value, self.max_value)
        _positive(self.q, f"{self.kind}'s q")

    def sample(self, rng: random.Random) -> int | float:
        return _quantize(math.exp(rng.uniform(self.min_value, self.max_value)), self.q)


@dataclass(frozen=True, slots=True)
class Normal(ParameterExpression):
    """``normal(mu, sigma)``."""

    mu: float
    sigma: float
    kind = "normal"

    def __post_init__(self) -> None:
        _number(self.mu, f"{self.kind}'s mu")
        _positive(self.sigma, f"{self.kind}'s sigma")

    def sample(self, rng: random.Random) -> float:
        return rng.gauss(self.mu, self.sigma)


@dataclass(frozen=True, slots=True)
class QNormal(ParameterExpression):
    """``qnormal(mu, sigma, q)``: ``round(normal(mu, sigma) / q) * q``."""

    mu: float
    sigma: float
    q: int | float
    kind = "qnormal"

    def __post_init__(self) -> None:
        _number(self.mu, f"{self.kind}'s mu")
        _positive(self.sigma, f"{self.kind}'s sigma")
        _positive(self.q, f"{self.kind}'s q")

    def sample(self, rng: random.Random) -> int | float:
        return _quantize(rng.gauss(self.mu, self.sigma), self.q)


@dataclass(frozen=True, slots=True)
class LogNormal(ParameterExpression):
    """``lognormal(mu, sigma)``: ``exp(normal(mu, sigma))``."""

    mu: float
    sigma: float
    kind = "lognormal"

    def __post_init__(self) -> None:
        _number(self.mu, f"{self.kind}'s mu")
        _positive(self.sigma, f"{self.kind}'s sigma")

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.gauss(self.mu, self.sigma))


@dataclass(frozen=True, slots=True)
class QLogNormal(ParameterExpression):
    """``qlognormal(mu, sigma, q)``: ``round(exp(normal(mu, sigma)) / q) * q``."""

    mu: float
    sigma: float
    q: int | float
    kind = "qlognormal"

    def __post_init__(self) -> None:
        _number(self.mu, f"{self.kind}'s mu")
        _positive(self.sigma, f"{self.kind}'s sigma")
        _positive(self.q, f"{self.kind}'s q")

    def sample(self, rng: random.Random) -> int | float:
        return _quantize(math.exp(rng.gauss(self.mu, self.sigma)), self.q)


def _bounds(kind: str, low: Any, high: Any) -> None:
    if _number(low, f"{kind}'s min_value") >= _number(high, f"{kind}'s max_value"):
        raise ConfigurationError(f"{kind}(min_value, max_value) needs min_value < max_value, got {low!r}, {high!r}")


# -- Azure ML's functions ---------------------------------------------------------------------------------------


def choice(*options: Any) -> Choice:
    """One of ``options``: ``choice(0.1, 0.3)``, or one list/tuple/range: ``choice([0.1, 0.3])``."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    return Choice(tuple(options))


def randint(upper: int) -> RandInt:
    """An integer in ``[0, upper)``."""
    return RandInt(upper)


def uniform(min_value: float, max_value: float) -> Uniform:
    """Uniform between ``min_value`` and ``max_value``."""
    return Uniform(min_value, max_value)


def quniform(min_value: float, max_value: float, q: int | float) -> QUniform:
    """``round(uniform(min_value, max_value) / q) * q`` (an int when ``q`` is an int)."""
    return QUniform(min_value, max_value, q)


def loguniform(min_value: float, max_value: float) -> LogUniform:
    """``exp(uniform(min_value, max_value))``: the logarithm of the value is uniform."""
    return LogUniform(min_value, max_value)


def qloguniform(min_value: float, max_value: float, q: int | float) -> QLogUniform:
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""
    return QLogUniform(min_value, max_value, q)


def normal(mu: float, sigma: float) -> Normal:
    """Normal with mean ``mu`` and standard deviation ``sigma``."""
    return Normal(mu, sigma)


def qnormal(mu: float, sigma: float, q: int | float) -> QNormal:
    """``round(normal(mu, sigma) / q) * q``."""
    return QNormal(mu, sigma, q)


def lognormal(mu: float, sigma: float) -> LogNormal:
    """``exp(normal(mu, sigma))``."""
    return LogNormal(mu, sigma)


def qlognormal(mu: float, sigma: float, q: int | float) -> QLogNormal:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    return QLogNormal(mu, sigma, q)


_FUNCTIONS: dict[str, Callable[..., ParameterExpression]] = {
    "choice": choice, "randint": randint, "uniform": uniform, "quniform": quniform, "loguniform": loguniform,
    "qloguniform": qloguniform, "normal": normal, "qnormal": qnormal, "lognormal": lognormal,
    "qlognormal": qlognormal,
}


# -- text and spec forms -------------------------------------------------------------------------------------------


def call_from_text(text: str, what: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"name(1, 'a', k=2.5)"`` -> ``("name", [1, "a"], {"k": 2.5})``; arguments must be literals (never evaluated)."""
    if not isinstance(text, str):
        raise InvalidValueType(f"{what} must be text like 'uniform(0.0, 1.0)', got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConfigurationError(f"{what} {text!r} is not of the form name(arg, ...): {exc.msg}") from None
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise ConfigurationError(f"{what} {text!r} is not of the form name(arg, ...)")
    try:
        args = [ast.literal_eval(arg) for arg in tree.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords if kw.arg is not None}
    except ValueError:
        raise ConfigurationError(f"{what} {text!r}: arguments must be numbers, strings, bools or lists of them") \
            from None
    if len(kwargs) != len(tree.keywords):
        raise ConfigurationError(f"{what} {text!r}: '**' is not allowed")
    return tree.func.id, args, kwargs


def parse_expression(text: str) -> ParameterExpression:
    """The expression written as text, e.g. ``"choice(0.0, 0.1)"`` or ``"loguniform(-6, -1)"``."""
    name, args, kwargs = call_from_text(text, "parameter expression")
    function = _FUNCTIONS.get(name)
    if function is None:
        raise ConfigurationError(f"parameter expression {text!r}: unknown function {name!r}; "
                                 f"one of {', '.join(_FUNCTIONS)}")
    try:
        return function(*args, **kwargs)
    except TypeError as exc:
        if isinstance(exc, InvalidValueType):
            raise
        raise ConfigurationError(f"parameter expression {text!r}: {exc}") from None


def expression_from_spec(spec: Any) -> ParameterExpression:
    """An expression from its spec form (``{"type": "uniform", "min_value": 0, "max_value": 1}``), its text, or a list
    (a choice of its items)."""
    if isinstance(spec, ParameterExpression):
        return spec
    if isinstance(spec, str):
        return parse_expression(spec)
    if isinstance(spec, Sequence):
        return choice(list(spec))
    if not isinstance(spec, Mapping):
        raise InvalidValueType(f"a parameter must be an expression, its text or a mapping with 'type', got {spec!r}")
    fields = dict(spec)
    kind = fields.pop("type", None)
    function = _FUNCTIONS.get(kind) if isinstance(kind, str) else None
    if function is None:
        raise ConfigurationError(f"parameter {spec!r}: 'type' must be one of {', '.join(_FUNCTIONS)}")
    if kind == "choice":
        values = fields.pop("values", None)
        if fields or not isinstance(values, Sequence) or isinstance(values, str):
            raise ConfigurationError(f"parameter {spec!r}: a choice takes exactly 'values' (a list)")
        return choice(list(values))
    try:
        return function(**fields)
    except TypeError as exc:
        if isinstance(exc, InvalidValueType):
            raise
        raise ConfigurationError(f"parameter {spec!r}: {exc}") from None
