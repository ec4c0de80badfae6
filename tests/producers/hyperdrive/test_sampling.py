import itertools

import pytest

from producers.errors import ConfigurationError, InvalidValueType
from producers.hyperdrive.parameters import choice, normal, randint, uniform
from producers.hyperdrive.sampling import GridParameterSampling, RandomParameterSampling, sampling_from_spec


def test_grid_is_every_combination_once_last_parameter_fastest() -> None:
    grid = GridParameterSampling({"--a": choice(1, 2, 3), "--b": choice("x", "y")})
    trials = list(grid.trials())
    assert grid.size() == 6
    assert trials == [{"--a": a, "--b": b} for a, b in itertools.product((1, 2, 3), ("x", "y"))]


def test_grid_takes_choices_only() -> None:
    with pytest.raises(ConfigurationError, match="choice"):
        GridParameterSampling({"--lr": uniform(0, 1)})


@pytest.mark.parametrize("space", [{}, {"": choice(1)}, {"has space": choice(1)}, {"x" * 101: choice(1)}])
def test_parameter_names_are_checked(space) -> None:
    with pytest.raises(ConfigurationError):
        GridParameterSampling(space)


def test_space_values_must_be_expressions() -> None:
    with pytest.raises(InvalidValueType):
        RandomParameterSampling({"--lr": 0.1})
    with pytest.raises(InvalidValueType):
        RandomParameterSampling([("--lr", uniform(0, 1))])


def test_random_is_repeatable_by_seed_and_unbounded_for_continuous_spaces() -> None:
    space = {"--lr": uniform(0.0, 1.0), "--k": choice(1, 2, 3), "--n": normal(0, 1)}
    sampling = RandomParameterSampling(space, seed=7)
    assert sampling.size() is None
    first = list(itertools.islice(sampling.trials(seed=7), 50))
    again = list(itertools.islice(RandomParameterSampling(space).trials(seed=7), 50))
    other = list(itertools.islice(sampling.trials(seed=8), 50))
    assert first == again != other
    assert all(0 <= t["--lr"] <= 1 and t["--k"] in (1, 2, 3) for t in first)


def test_random_over_a_finite_space_never_repeats_and_ends() -> None:
    sampling = RandomParameterSampling({"--k": choice(1, 2, 3), "--j": randint(4)})
    trials = list(sampling.trials(seed=1))
    assert sampling.size() == 12
    assert len(trials) == 12
    assert len({(t["--k"], t["--j"]) for t in trials}) == 12


def test_seed_from_properties_and_checked() -> None:
    assert RandomParameterSampling({"a": uniform(0, 1)}, properties={"seed": 5}).seed == 5
    assert RandomParameterSampling({"a": uniform(0, 1)}).seed is None
    with pytest.raises(ConfigurationError):
        RandomParameterSampling({"a": uniform(0, 1)}, seed=-1)


def test_spec_round_trip() -> None:
    sampling = RandomParameterSampling({"--lr": uniform(0.0, 1.0), "--k": choice(1, 2)}, seed=3)
    spec = sampling.to_spec()
    assert spec == {"sampling": "random", "seed": 3, "parameters": {
        "--lr": {"type": "uniform", "min_value": 0.0, "max_value": 1.0}, "--k": {"type": "choice", "values": [1, 2]}}}
    again = sampling_from_spec(spec["sampling"], spec["parameters"], seed=spec["seed"])
    assert isinstance(again, RandomParameterSampling) and again.parameter_space == sampling.parameter_space
    grid = sampling_from_spec("grid", {"--a": "choice(1, 2)", "--b": [3, 4]})
    assert isinstance(grid, GridParameterSampling) and grid.size() == 4
    with pytest.raises(ConfigurationError, match="Bayesian"):
        sampling_from_spec("bayesian", {"--a": "choice(1)"})
    with pytest.raises(ConfigurationError, match="seed"):
        sampling_from_spec("grid", {"--a": "choice(1)"}, seed=1)
