import math

import pytest

from runstream.server.mlflow_backend import Experiment, MetricPoint, RunInfo, RunView
from runstream.server.mlflow_search import Clause, parse_filter, parse_order_by, search_experiments, search_runs
from runstream.server.mlflow_wire import MlflowError


def _run(run_id, start, *, metrics=None, params=None, tags=None, status="RUNNING", end=None):
    return RunView(
        info=RunInfo(run_id=run_id, experiment_id="1", run_name=f"name-{run_id}", user_id="u", status=status,
                     start_time=start, end_time=end),
        metrics=[MetricPoint(k, v, 0, 0) for k, v in (metrics or {}).items()],
        params=params or {}, tags=tags or {},
    )


RUNS = [
    _run("a", 1, metrics={"loss": 0.5, "acc": 0.9}, params={"lr": "0.1", "opt": "adam"}, tags={"team": "x"},
         status="FINISHED", end=10),
    _run("b", 2, metrics={"loss": 0.2}, params={"lr": "0.01", "opt": "sgd"}, tags={"mlflow.runName": "lr-b"}),
    _run("c", 3, metrics={"loss": math.nan}, params={"lr": "0.1"}),
    _run("d", 4),
]


def _ids(filter_string=None, order_by=(), max_results=1000, page_token=None):
    page, token = search_runs(RUNS, filter_string=filter_string, order_by=list(order_by), max_results=max_results,
                              page_token=page_token, artifact_uri=lambda r: f"mlflow-artifacts:/1/{r.info.run_id}/artifacts")
    return [r.info.run_id for r in page], token


def test_default_order_is_newest_first():
    assert _ids() == (["d", "c", "b", "a"], None)


@pytest.mark.parametrize("filter_string,expected", [
    ("metrics.loss < 0.3", ["b"]),
    ("metric.loss >= 0.2 AND params.lr = '0.1'", ["a"]),
    ("metrics.loss != 0.5", ["c", "b"]),
    ("params.opt LIKE 'a%'", ["a"]),
    ("params.opt ILIKE 'SG_'", ["b"]),
    ("params.opt IS NULL", ["d", "c"]),
    ("tags.team IS NOT NULL", ["a"]),
    ("tags.`mlflow.runName` = 'lr-b'", ["b"]),
    ('tags."mlflow.runName" = \'lr-b\'', ["b"]),
    ("tags.mlflow.runName = 'lr-b'", ["b"]),
    ("attributes.status = 'FINISHED'", ["a"]),
    ("status != 'FINISHED'", ["d", "c", "b"]),
    ("attributes.run_id IN ('a', 'c')", ["c", "a"]),
    ("run_id NOT IN ('a')", ["d", "c", "b"]),
    ("attributes.start_time > 2", ["d", "c"]),
    ("created <= 1", ["a"]),
    ("attributes.end_time = 10", ["a"]),
    ("`run name` = 'name-b'", ["b"]),
    ("attributes.run_name LIKE 'name-%' and metrics.acc > 0", ["a"]),
    ("attributes.artifact_uri LIKE '%/b/artifacts'", ["b"]),
    ("", ["d", "c", "b", "a"]),
])
def test_filters(filter_string, expected):
    assert _ids(filter_string)[0] == expected


@pytest.mark.parametrize("bad", [
    "metrics.loss < 'x'", "params.lr > '1'", "foo.x = 1", "nope = 'x'", "metrics.loss < 1 OR metrics.loss > 2",
    "params.lr = 0.1", "metrics.loss", "params.lr IN ('a')", "metrics.loss IS NULL", "params.lr = 'unterminated",
])
def test_bad_filters_are_invalid_parameter_value(bad):
    with pytest.raises(MlflowError) as err:
        _ids(bad)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_order_by_keeps_missing_and_nan_last_in_both_directions():
    assert _ids(order_by=["metrics.loss ASC"])[0] == ["b", "a", "c", "d"]
    assert _ids(order_by=["metrics.loss DESC"])[0] == ["a", "b", "c", "d"]
    assert _ids(order_by=["params.lr", "attributes.start_time ASC"])[0] == ["b", "a", "c", "d"]
    assert _ids(order_by=["start_time"])[0] == ["a", "b", "c", "d"]


def test_order_by_refuses_duplicates_and_garbage():
    with pytest.raises(MlflowError):
        parse_order_by(["metrics.loss", "metric.loss DESC"])
    with pytest.raises(MlflowError):
        parse_order_by(["metrics.loss sideways"])


def test_paging_omits_the_token_on_the_last_page():
    first, token = _ids(max_results=3)
    assert first == ["d", "c", "b"] and token
    assert _ids(max_results=3, page_token=token) == (["a"], None)
    assert _ids(max_results=4) == (["d", "c", "b", "a"], None)
    with pytest.raises(MlflowError):
        _ids(max_results=50_001)


def test_parse_filter_values_are_data():
    assert parse_filter("params.p = 'it''s; DROP TABLE runs'") == [Clause("param", "p", "=", "it's; DROP TABLE runs")]
    assert parse_filter("metrics.`a b` > -1.5e3") == [Clause("metric", "a b", ">", -1500.0)]


def test_search_experiments():
    exps = [Experiment(experiment_id=str(i), name=n, creation_time=t, last_update_time=t, tags=tags)
            for i, (n, t, tags) in enumerate([("Default", 1, {}), ("mnist", 3, {"k": "v"}), ("cifar", 2, {})])]

    def names(**kw):
        page, token = search_experiments(exps, filter_string=kw.get("f"), order_by=kw.get("o", []),
                                         max_results=kw.get("n", 1000), page_token=kw.get("t"))
        return [e.name for e in page], token

    assert names() == (["mnist", "cifar", "Default"], None)
    assert names(f="name LIKE '%i%'")[0] == ["mnist", "cifar"]
    assert names(f="tags.k = 'v'")[0] == ["mnist"]
    assert names(f="attributes.creation_time < 3", o=["name ASC"])[0] == ["Default", "cifar"]
    assert names(f="experiment_id IN ('0', '2')")[0] == ["cifar", "Default"]
    page, token = names(n=2)
    assert page == ["mnist", "cifar"] and names(n=2, t=token) == (["Default"], None)
    with pytest.raises(MlflowError):
        names(f="metrics.x > 1")
