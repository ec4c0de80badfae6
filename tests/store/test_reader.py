"""The reader's shaping, status and waiting logic over canned rows (the queries run in tests/integration)."""

import contextlib
import math

import pytest

from store.errors import NotVisible, RunNotFound
from store.queries import READ_QUERIES
from store.reader import RunReader


class Canned:
    """A ReadQueries answering each query name with fixed rows."""

    def __init__(self, **answers):
        self.answers = answers
        self.asked = []

    def fetch(self, name, params):
        assert name in READ_QUERIES, name
        self.asked.append(name)
        answer = self.answers.get(name, [])
        return answer(params) if callable(answer) else answer


def test_tables_shapes():
    rows = [
        ("accs", "list", 1, "w", 3, 0, ["accs"], [0.5], [""], [0]),
        ("accs", "list", 1, "w", 3, 1, ["accs"], [None], ["n/a"], [1]),
        ("xy", "row", 1, "w", 4, 0, ["x", "y"], [1.0, 2.0], ["", ""], [0, 0]),
        ("xy", "row", 2, "w", 5, 0, ["x", "z"], [3.0, None], ["", ""], [0, 0]),
        ("l2", "list", 1, "w", 6, 0, ["l2"], [1.0], [""], [0]),
        ("l2", "list", 2, "w", 7, 0, ["l2"], [2.0], [""], [0]),
    ]
    out = RunReader._tables(rows)
    assert out["accs"] == [0.5, "n/a"]
    assert out["xy"]["x"] == [1.0, 3.0] and out["xy"]["y"] == [2.0, None] and out["xy"]["z"][0] is None
    assert math.isnan(out["xy"]["z"][1])  # a NaN cell (null from JSON) stays NaN
    assert out["l2"] == [[1.0], [2.0]]  # two log_list calls


def test_a_running_run_whose_heartbeats_stopped_reads_as_failed():
    now = 1_700_000_000.0
    queries = Canned(status=[("Running", "", int(now * 1000) - 600_000)],
                     heartbeat=[(int(now * 1000) - 400_000, 30_000, 3)])
    reader = RunReader.over(queries, heartbeat_lost_s=300, clock=lambda: now)
    assert reader.get_status("r") == "Failed"
    queries.answers["heartbeat"] = [(int(now * 1000) - 10_000, 30_000, 3)]
    assert reader.get_status("r") == "Running"


def test_an_unknown_run_is_run_not_found():
    with pytest.raises(RunNotFound):
        RunReader.over(Canned()).get_status("nope")


def test_errors_leave_through_connect_so_a_caller_can_translate_them():
    class Translated(Exception):
        pass

    @contextlib.contextmanager
    def connect():
        try:
            yield Canned(writer_progress=[(3,)])
        except RunNotFound as exc:
            raise Translated(str(exc)) from exc
        except NotVisible as exc:
            raise Translated(str(exc)) from exc

    clock = iter(range(100))
    reader = RunReader(connect, monotonic=lambda: next(clock), sleep=lambda s: None)
    with pytest.raises(Translated, match="no run"):
        reader.get_details("nope")
    reader.wait_visible("r", "w", 3, timeout=5)  # seen: returns
    with pytest.raises(Translated, match="seen up to seq 3 of 9"):
        reader.wait_visible("r", "w", 9, timeout=5)


def test_metric_series_of_many_runs_in_one_query():
    queries = Canned(metric_series=lambda p: [("a", 0.5, 0), ("a", None, 0), ("a", 0.0, 1), ("b", 2.0, 0)])
    series = RunReader.over(queries).get_metric_series("e", ["a", "b", "c"], "mse")
    assert series["a"][0] == 0.5 and math.isnan(series["a"][1]) and len(series["a"]) == 2  # text values left out
    assert series["b"] == [2.0] and "c" not in series
    assert queries.asked == ["metric_series"]
    assert RunReader.over(Canned()).get_metric_series("e", [], "mse") == {}


def test_a_canceled_run_with_a_reason_carries_it_in_its_details():
    run = [("r", "e", "p", "trial 1", "submitted", "h", 1, 1000)]
    queries = Canned(run=run, status=[("Canceled", "BanditPolicy at interval 4: ...", 2000)])
    details = RunReader.over(queries).get_details("r")
    assert details["status"] == "Canceled" and details["parentRunId"] == "p"
    assert details["error"] == {"code": "Canceled", "message": "BanditPolicy at interval 4: ..."}
    queries.answers["status"] = [("Canceled", "", 2000)]
    assert RunReader.over(queries).get_details("r")["error"] is None
