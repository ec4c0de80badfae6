from __future__ import annotations

import pytest

from schemas.backoff import Backoff


def test_delays_double_up_to_the_cap_and_reset() -> None:
    b = Backoff(initial_s=0.2, max_s=1.0)
    assert [b.next_delay() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.failures == 5 and b.peek() == 1.0
    b.reset()
    assert b.failures == 0 and b.next_delay() == 0.2


@pytest.mark.parametrize("kwargs", [{"initial_s": 0, "max_s": 1}, {"initial_s": 2, "max_s": 1},
                                    {"initial_s": 1, "max_s": 2, "factor": 0.5}])
def test_nonsense_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
