import pytest

from consumers.errors import RunLimitExceeded
from consumers.limits import RunCounters, RunLimiter
from consumers.testing import FixedCounterLoader
from consumers.validate import validate
from schemas import RunLimits

from . import factory as f


def apply(limiter, event):
    limiter.prepare([event])
    checked = validate(event, limiter.limits)
    return checked, limiter.apply(checked)


def test_first_50_names_kept_later_rejected_item_by_item():
    limiter = RunLimiter(RunLimits(), FixedCounterLoader())
    for i in range(0, 48, 8):
        apply(limiter, f.scalars(names=[f"m{j}" for j in range(i, i + 8)], points=2))
    # 48 names known; a batch with 2 known + 4 new names: 2 new fit, 2 rejected
    checked, new = apply(limiter, f.scalars(names=["m0", "m1", "n0", "n1", "n2", "n3"], points=3))
    assert [n.name for n in new] == ["n0", "n1"]
    name_idx = checked.event.point_columns()[0]
    rejected_names = {checked.event.names[name_idx[i]] for i in checked.rejected}
    assert rejected_names == {"n2", "n3"}
    assert all(r.reason == "too_many_metric_names" for r in checked.rejected.values())
    assert len(checked.rejected) == 6
    # known names still take points
    checked, new = apply(limiter, f.scalars(names=["m0", "n1"], points=5))
    assert checked.rejected == {} and new == []


def test_single_item_metrics_raise():
    limiter = RunLimiter(RunLimits(max_metric_names=1), FixedCounterLoader())
    apply(limiter, f.scalars(names=["a"]))
    with pytest.raises(RunLimitExceeded) as info:
        apply(limiter, f.row(name="b", x=1))
    assert info.value.reason == "too_many_metric_names"


def test_kind_conflict():
    limiter = RunLimiter(RunLimits(), FixedCounterLoader())
    apply(limiter, f.scalars(names=["a"]))
    with pytest.raises(RunLimitExceeded) as info:
        apply(limiter, f.table(name="a"))
    assert info.value.reason == "metric_kind_conflict"
    checked, _ = apply(limiter, f.scalars(names=["a"]))
    assert checked.rejected == {}


def test_rows_per_name():
    limiter = RunLimiter(RunLimits(max_rows_per_metric=5), FixedCounterLoader())
    checked, _ = apply(limiter, f.scalars(names=["a"], points=3))
    assert checked.rejected == {}
    checked, _ = apply(limiter, f.scalars(names=["a"], points=3))
    assert list(checked.rejected) == [2]
    assert checked.rejected[2].reason == "too_many_rows"
    apply(limiter, f.list_logged(name="l", values=[1, 2, 3, 4, 5]))
    with pytest.raises(RunLimitExceeded):
        apply(limiter, f.list_logged(name="l", values=[6]))


def test_tags_and_properties_counted_by_distinct_key():
    limiter = RunLimiter(RunLimits(max_tags=2, max_properties=1), FixedCounterLoader())
    apply(limiter, f.started(tags={"a": None}, properties={"p": "1"}))
    checked, _ = apply(limiter, f.tags(values={"a": "again", "b": "2", "c": "3"}))
    assert {i: r.reason for i, r in checked.rejected.items()} == {2: "too_many_tags"}
    checked, _ = apply(limiter, f.properties(values={"p": "x", "q": "y"}))
    assert {i: r.reason for i, r in checked.rejected.items()} == {1: "too_many_properties"}


def test_counters_rebuilt_from_the_store_once_per_run():
    known = RunCounters(names={f"m{i}": "scalar" for i in range(50)}, rows={"m0": 10})
    loader = FixedCounterLoader({"run_1": known})
    limiter = RunLimiter(RunLimits(), loader)
    checked, new = apply(limiter, f.scalars("run_1", names=["m0", "new"], points=2))
    assert new == []
    name_idx = checked.event.point_columns()[0]
    assert {checked.event.names[name_idx[i]] for i in checked.rejected} == {"new"}
    apply(limiter, f.scalars("run_1"))
    apply(limiter, f.scalars("run_2"))
    assert loader.calls == [[("exp", "run_1")], [("exp", "run_2")]]
    limiter.forget_all()
    apply(limiter, f.scalars("run_1"))
    assert len(loader.calls) == 3


def test_lru_trim():
    limiter = RunLimiter(RunLimits(), FixedCounterLoader(), max_runs=2)
    for r in ("a", "b", "c"):
        apply(limiter, f.scalars(r))
    limiter.trim()
    assert "a" not in limiter and "c" in limiter and len(limiter) == 2
