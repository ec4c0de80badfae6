import math
import random

import pytest

from producers.errors import ConfigurationError, InvalidValueType
from producers.hyperdrive.parameters import (
    Choice,
    choice,
    expression_from_spec,
    lognormal,
    loguniform,
    normal,
    parse_expression,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)


def test_choice_takes_options_or_one_list() -> None:
    assert choice(0.0, 0.1).options() == (0.0, 0.1)
    assert choice([1, 2, 3]).options() == (1, 2, 3)
    assert choice(range(3)).options() == (0, 1, 2)
    assert choice("adam").options() == ("adam",)
    assert choice(1, 1.5, "x", True).options() == (1, 1.5, "x", True)


@pytest.mark.parametrize("call", [lambda: choice(), lambda: choice(1, 1), lambda: choice(float("nan"))])
def test_bad_choices_fail_at_construction(call) -> None:
    with pytest.raises(ConfigurationError):
        call()


def test_choice_options_must_be_scalars() -> None:
    with pytest.raises(InvalidValueType):
        choice([1], [2])


@pytest.mark.parametrize("call", [
    lambda: uniform(1, 1), lambda: uniform(2, 1), lambda: uniform(0, math.inf), lambda: quniform(0, 1, 0),
    lambda: normal(0, 0), lambda: randint(0), lambda: randint(2.5), lambda: qnormal(0, 1, -1),
])
def test_bad_bounds_fail_at_construction(call) -> None:
    with pytest.raises(ConfigurationError):
        call()


def test_numbers_must_be_numbers() -> None:
    with pytest.raises(InvalidValueType):
        uniform("0", 1)
    with pytest.raises(InvalidValueType):
        uniform(True, 2)


def test_samples_follow_azure_definitions() -> None:
    rng = random.Random(3)
    for _ in range(500):
        assert 0.5 <= uniform(0.5, 2.0).sample(rng) <= 2.0
        v = loguniform(-3, -1).sample(rng)
        assert math.exp(-3) <= v <= math.exp(-1)
        q = quniform(16, 128, 16).sample(rng)
        assert isinstance(q, int) and q % 16 == 0 and 16 <= q <= 128
        qf = quniform(0.0, 1.0, 0.25).sample(rng)
        assert isinstance(qf, float) and qf in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert lognormal(0, 1).sample(rng) > 0
        assert qloguniform(0, 3, 1).sample(rng) in range(1, 21)
        assert randint(5).sample(rng) in range(5)
        assert choice("a", "b").sample(rng) in ("a", "b")


def test_same_rng_same_samples() -> None:
    a, b = random.Random(42), random.Random(42)
    assert [normal(1, 2).sample(a) for _ in range(10)] == [normal(1, 2).sample(b) for _ in range(10)]


def test_text_form_round_trips_and_is_never_evaluated() -> None:
    for expression in (choice(0.0, 0.1, "x"), uniform(0.01, 0.1), quniform(16, 128, 16), loguniform(-6, -1),
                       normal(0.0, 1.5), randint(4)):
        assert parse_expression(str(expression)) == expression
    assert parse_expression("uniform(min_value=0, max_value=2)") == uniform(0, 2)
    assert parse_expression("choice([1, 2])") == choice(1, 2)
    for text in ("__import__('os').system('true')", "choice(open('x'))", "uniform(0, 1) + 1", "choice(*x)",
                 "bogus(1)", "uniform(0)", "uniform(", "choice(**{'a': 1})"):
        with pytest.raises(ConfigurationError):
            parse_expression(text)


def test_spec_form_round_trips() -> None:
    for expression in (choice(0.0, 0.1), uniform(0.01, 0.1), quniform(1, 9, 2), qnormal(0, 1, 0.5), randint(3)):
        spec = expression.to_spec()
        assert spec["type"] == expression.kind
        assert expression_from_spec(spec) == expression
    assert choice(1, 2).to_spec() == {"type": "choice", "values": [1, 2]}
    assert expression_from_spec([1, 2]) == choice(1, 2)
    assert expression_from_spec("uniform(0, 1)") == uniform(0, 1)
    assert isinstance(expression_from_spec({"type": "choice", "values": ["a"]}), Choice)
    for bad in ({"type": "nope"}, {"type": "uniform", "min_value": 0}, {"type": "choice", "values": "ab"},
                {"type": "choice", "values": [1], "extra": 2}):
        with pytest.raises(ConfigurationError):
            expression_from_spec(bad)
    with pytest.raises(InvalidValueType):
        expression_from_spec(3)
