import math

from runstream.server.mlflow_backend import MetricColumns, MetricPoint, RunInfo, RunView
from runstream.server.overlay import Overlay, SeenPoints


def _cols(*points):
    return MetricColumns.of(points)


def _info(run_id="r", status="RUNNING", exp="1"):
    return RunInfo(run_id=run_id, experiment_id=exp, run_name="n", user_id="u", status=status, start_time=1)


def test_a_created_run_is_readable_before_the_store_shows_it():
    ov = Overlay()
    ov.record_info(_info())
    ov.record_batch("r", _cols(MetricPoint("loss", 0.5, 10, 1)), {"lr": "0.1"}, {"t": "v"})
    view = ov.merge_run("r", None)
    assert view.info.status == "RUNNING" and view.params == {"lr": "0.1"} and view.tags == {"t": "v"}
    assert view.metrics == [MetricPoint("loss", 0.5, 10, 1)]
    assert [i.run_id for i in ov.created_runs(["1"])] == ["r"] and ov.created_runs(["2"]) == []
    assert ov.merge_run("other", None) is None


def test_pending_writes_merge_over_the_store():
    ov = Overlay()
    stored = RunView(info=_info(), metrics=[MetricPoint("loss", 0.9, 5, 3), MetricPoint("acc", 0.1, 5, 0)],
                     params={"a": "1"}, tags={"t": "old", "gone": "x"})
    ov.record_batch("r", _cols(MetricPoint("loss", 0.4, 1, 2), MetricPoint("acc", 0.2, 6, 0)), {"b": "2"}, {"t": "new"})
    ov.record_tag_deleted("r", "gone")
    ov.record_info(_info(status="FINISHED"))
    view = ov.merge_run("r", stored)
    assert view.info.status == "FINISHED"
    assert {m.key: m.value for m in view.metrics} == {"loss": 0.9, "acc": 0.2}  # step 3 beats step 2
    assert view.params == {"a": "1", "b": "2"} and view.tags == {"t": "new"}


def test_prune_drops_only_what_was_recorded_up_to_the_mark():
    ov = Overlay()
    ov.record_batch("r", _cols(MetricPoint("m", 1.0, 1, 0)), {}, {})
    ov.record_file("r", "a.txt", b"abc")
    upto = ov.mark()
    ov.record_batch("r", _cols(MetricPoint("m", 2.0, 2, 1)), {}, {})
    ov.prune("r", upto)
    assert ov.pending_points("r", "m") == [MetricPoint("m", 2.0, 2, 1)]
    assert ov.pending_files("r") == {}
    ov.prune("r", ov.mark())
    assert ov.pending_runs() == []


def test_file_bytes_are_bounded():
    ov = Overlay(max_file_bytes=5)
    ov.record_file("r", "small", b"123")
    ov.record_file("r", "big", b"123456")
    assert ov.pending_files("r") == {"small": (3, b"123"), "big": (6, None)}


def test_points_are_bounded():
    ov = Overlay(max_points=10)
    ov.record_batch("r", _cols(*[MetricPoint("m", float(i), i, i) for i in range(6)]), {}, {})
    ov.record_batch("r", _cols(*[MetricPoint("m", float(i), i, i) for i in range(6, 11)]), {}, {})
    assert ov.pending_points("r", "m") == [MetricPoint("m", float(i), i, i) for i in range(6, 11)]  # oldest chunk gone
    ov.record_batch("r", _cols(*[MetricPoint("m", float(i), i, i) for i in range(20, 31)]), {}, {})
    assert len(ov.pending_points("r", "m")) < 11


def test_seen_points_drop_retries_and_repeats_nan_included():
    now = [0.0]
    seen = SeenPoints(window_s=10, clock=lambda: now[0])
    batch = _cols(MetricPoint("m", math.nan, 1, 0), MetricPoint("m", 1.0, 1, 1), MetricPoint("m", 1.0, 1, 1))
    assert seen.fresh("r", batch).steps == [0, 1]
    assert len(seen.fresh("r", batch)) == 0
    assert len(seen.fresh("other", batch)) == 2
    now[0] = 100.0
    seen.fresh("third", _cols(MetricPoint("x", 0.0, 0, 0)))
    assert len(seen.fresh("r", batch)) == 2  # forgotten after the window


def test_seen_points_bound():
    seen = SeenPoints(max_points=3, clock=lambda: 0.0)
    seen.fresh("a", _cols(*[MetricPoint("m", 1.0, 1, i) for i in range(3)]))
    seen.fresh("b", _cols(*[MetricPoint("m", 1.0, 1, i) for i in range(3)]))
    assert len(seen.fresh("a", _cols(MetricPoint("m", 1.0, 1, 0)))) == 1  # run a was evicted


def test_seen_points_keep_the_new_points_of_a_partly_seen_write_in_order():
    seen = SeenPoints(clock=lambda: 0.0)
    first = _cols(MetricPoint("a", 1.0, 1, 0), MetricPoint("b", 2.0, 1, 0))
    assert seen.fresh("r", first) is first  # all new: the same columns, no copy
    again = _cols(MetricPoint("c", 3.0, 2, 1), MetricPoint("a", 1.0, 1, 0), MetricPoint("d", math.nan, 2, 1))
    assert seen.fresh("r", again).points()[:1] == [MetricPoint("c", 3.0, 2, 1)]
    assert seen.fresh("r", again).keys == []
