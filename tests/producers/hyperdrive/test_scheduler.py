import itertools

import pytest

from producers.hyperdrive.scheduler import Launch, Stop, SweepScheduler
from producers.testing import ManualClock


def trials(n=None):
    counter = itertools.count() if n is None else iter(range(n))
    return ({"--i": i} for i in counter)


def make(clock, n=None, **limits):
    defaults = dict(max_total_runs=None, max_concurrent_runs=2, max_duration_s=60.0)
    defaults.update(limits)
    return SweepScheduler(trials(n), clock=clock, **defaults)


def test_launches_fill_free_slots_up_to_the_total() -> None:
    s = make(ManualClock(), max_total_runs=5, max_concurrent_runs=2)
    assert s.poll() == [Launch(0, {"--i": 0}), Launch(1, {"--i": 1})]
    assert s.poll() == []
    s.trial_ended(0, "Completed")
    assert s.poll() == [Launch(2, {"--i": 2})]
    for index in (1, 2):
        s.trial_ended(index, "Failed")
    assert [a.index for a in s.poll()] == [3, 4]
    assert s.poll() == [] and not s.done
    s.trial_ended(3, "Completed")
    s.trial_ended(4, "Canceled")
    assert s.poll() == [] and s.done and s.status == "Completed" and s.launched == 5


def test_a_used_up_sampler_ends_the_sweep() -> None:
    s = make(ManualClock(), n=3, max_concurrent_runs=8)
    assert len(s.poll()) == 3
    for index in range(3):
        s.trial_ended(index, "Completed")
    assert s.poll() == [] and s.done


def test_a_stopping_trial_keeps_its_slot_until_it_ends() -> None:
    s = make(ManualClock(), max_concurrent_runs=1)
    assert s.poll() == [Launch(0, {"--i": 0})]
    assert s.stop(0, "BanditPolicy at interval 4: ...") == Stop(0, "BanditPolicy at interval 4: ...")
    assert s.stop(0, "again") is None and s.stopping_reason(0) == "BanditPolicy at interval 4: ..."
    assert s.poll() == []                                   # its process may still be alive
    s.trial_ended(0, "Canceled")
    assert s.poll() == [Launch(1, {"--i": 1})]
    assert s.stop(0, "late") is None


def test_duration_stops_running_trials_and_launches_nothing_more() -> None:
    clock = ManualClock()
    s = make(clock, max_concurrent_runs=2, max_duration_s=30.0)
    s.poll()
    clock.advance(10)
    assert s.seconds_to_deadline() == 20
    s.trial_ended(0, "Completed")
    clock.advance(20)
    actions = s.poll()
    assert actions == [Stop(1, "the sweep reached its max_duration_minutes")]
    assert s.poll() == [] and not s.done and s.seconds_to_deadline() == 0
    s.trial_ended(1, "Canceled")
    assert s.poll() == [] and s.done and s.status == "Completed"


def test_cancel_stops_every_running_trial_once() -> None:
    s = make(ManualClock(), max_concurrent_runs=3)
    s.poll()
    s.stop(1, "policy")
    assert s.cancel("hd_run.cancel()") == [Stop(0, "hd_run.cancel()"), Stop(2, "hd_run.cancel()")]
    assert s.cancel("again") == [] and s.canceled == "hd_run.cancel()"
    assert s.poll() == []
    for index in range(3):
        s.trial_ended(index, "Canceled")
    assert s.done and s.status == "Canceled"


def test_all_failed_fails_the_sweep() -> None:
    s = make(ManualClock(), n=2)
    s.poll()
    s.trial_ended(0, "Failed")
    s.trial_ended(1, "Failed")
    s.poll()
    assert s.done and s.status == "Failed"


def test_reports_are_checked() -> None:
    s = make(ManualClock())
    s.poll()
    with pytest.raises(ValueError):
        s.trial_ended(0, "Running")
    with pytest.raises(ValueError):
        s.trial_ended(7, "Completed")
    with pytest.raises(ValueError):
        SweepScheduler(trials(), max_total_runs=None, max_concurrent_runs=0, max_duration_s=1, clock=ManualClock())
