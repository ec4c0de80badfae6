"""The sweep-analytics dashboard's SQL runs on the real schema and answers right.

Every ClickHouse query of deploy/grafana/dashboards/sweep-analytics.json (panels
and variables) is expanded the way Grafana and the plugin would (time macros,
``percentencode`` variables) and run on chDB, migrated by the store's own
migrations (a modern engine, like the docker-compose ClickHouse the plugin
needs). The data includes a re-delivered batch and a metric name that tries to
end the SQL string.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import ChdbStore

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "sweep-analytics.json"
T0_MS = 1_700_000_000_000  # inside the time range below
RANGE_S = (T0_MS // 1000 - 3600, T0_MS // 1000 + 3600)
HOSTILE_NAME = "x' OR 1=1 --\\"


def expand(sql: str, variables: dict[str, str]) -> str:
    """Grafana's variable interpolation (``percentencode`` = strict encodeURIComponent) and the plugin's time macros."""
    sql = sql.replace("$__fromTime", f"toDateTime({RANGE_S[0]})").replace("$__toTime", f"toDateTime({RANGE_S[1]})")

    def encode(match: re.Match[str]) -> str:
        return urllib.parse.quote(variables[match.group(1)], safe="-_.~")

    sql = re.sub(r"\$\{(\w+):percentencode\}", encode, sql)
    assert "$" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path_factory.mktemp("chdb") / "chdb", database="runstream")
    try:
        s.migrate()
        fill(s)
        yield s
    finally:
        s.close()


def fill(s: ChdbStore) -> None:
    runs = [("r1", "sweep-a"), ("r2", "sweep-a"), ("r3", "sweep-a"), ("r4", "sweep-b")]
    # r1's start was delivered twice (same writer and seq): still one run.
    starts = runs + [("r1", "sweep-a")]
    s.write("runs", {"run_id": [r for r, _ in starts], "experiment": [e for _, e in starts],
                     "start_ms": [T0_MS] * len(starts), "writer_id": ["w"] * len(starts),
                     "seq": [1] * len(starts)})
    statuses = [("r1", "Completed", 5), ("r2", "Running", 2), ("r2", "Failed", 9), ("r3", "Completed", 4)]
    s.write("run_status", {"run_id": [r for r, _, _ in statuses], "experiment": ["sweep-a"] * len(statuses),
                           "status": [st for _, st, _ in statuses], "created_ms": [T0_MS + c for _, _, c in statuses],
                           "writer_id": ["w"] * len(statuses), "seq": [c for _, _, c in statuses]})
    names = [("r1", "loss"), ("r2", "loss"), ("r3", "loss"), ("r1", HOSTILE_NAME), ("r4", "acc")]
    s.write("metric_names", {"run_id": [r for r, _ in names], "experiment": ["sweep-a"] * 4 + ["sweep-b"],
                             "name": [n for _, n in names], "kind": ["scalar"] * len(names),
                             "first_ms": [T0_MS] * len(names)})
    points: list[tuple[str, str, str, int, float, int]] = []  # experiment, run, name, step, value, seq
    for run, values in (("r1", [1.0, 0.5, 0.3]), ("r2", [1.0, 0.8, 0.6]), ("r3", [0.9, 0.2, 0.1])):
        points += [("sweep-a", run, "loss", step, v, 10 + step) for step, v in enumerate(values)]
    points.append(("sweep-a", "r3", "loss", 3, math.nan, 20))  # NaN is left out of the leaderboard
    points.append(("sweep-a", "r1", HOSTILE_NAME, 0, 42.0, 30))
    points.append(("sweep-b", "r4", "acc", 0, 0.7, 40))
    for batch in (points, points[:3]):  # r1's first batch re-delivered
        s.write("metric_scalars", {
            "experiment": [p[0] for p in batch], "run_id": [p[1] for p in batch], "name": [p[2] for p in batch],
            "step": [p[3] for p in batch], "time_ms": [T0_MS + 1000 * p[3] for p in batch],
            "value": [p[4] for p in batch], "writer_id": ["w_" + p[1] for p in batch],
            "seq": [p[5] for p in batch], "idx": [0] * len(batch), "created_ms": [T0_MS] * len(batch)})


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel_sql(title: str) -> str:
    for panel in dashboard()["panels"]:
        if panel["title"] == title:
            sql: str = panel["targets"][0]["rawSql"]
            return sql
    raise AssertionError(f"no panel {title!r}")


def variable_sql(name: str) -> str:
    for variable in dashboard()["templating"]["list"]:
        if variable["name"] == name:
            sql: str = variable["query"]
            return sql
    raise AssertionError(f"no variable {name!r}")


def leaderboard(store: ChdbStore, metric: str, direction: str, experiment: str = "sweep-a") -> list[tuple[Any, ...]]:
    sql = expand(panel_sql("Leaderboard"), {"experiment": experiment, "metric": metric, "direction": direction})
    return store.query(sql)


def test_variables_list_experiments_and_their_scalar_metrics(store: ChdbStore) -> None:
    assert store.query(expand(variable_sql("experiment"), {})) == [("sweep-a",), ("sweep-b",)]
    metrics = store.query(expand(variable_sql("metric"), {"experiment": "sweep-a"}))
    assert metrics == sorted([("loss",), (HOSTILE_NAME,)])


def test_runs_per_experiment_counts_each_run_once(store: ChdbStore) -> None:
    assert store.query(expand(panel_sql("Runs per experiment"), {})) == [("sweep-a", 3), ("sweep-b", 1)]


def test_points_per_minute_counts_redelivered_points_once(store: ChdbStore) -> None:
    rows = store.query(expand(panel_sql("Points per minute"), {}))
    by_experiment: dict[str, int] = {}
    for _minute, experiment, points in rows:
        by_experiment[experiment] = by_experiment.get(experiment, 0) + points
    assert by_experiment == {"sweep-a": 11, "sweep-b": 1}


def test_leaderboard_ranks_runs_by_the_last_value_of_the_chosen_metric(store: ChdbStore) -> None:
    lowest_first = leaderboard(store, "loss", "asc")
    assert [row[0] for row in lowest_first] == ["r3", "r1", "r2"]
    run, last, low, high, last_step = lowest_first[0][:5]
    assert (run, last, low, high, last_step) == ("r3", 0.1, 0.1, 0.9, 2)  # the NaN at step 3 is left out
    assert [row[0] for row in leaderboard(store, "loss", "desc")] == ["r2", "r1", "r3"]


def test_a_hostile_metric_name_is_data_not_sql(store: ChdbStore) -> None:
    assert [row[:2] for row in leaderboard(store, HOSTILE_NAME, "desc")] == [("r1", 42.0)]
    # A direction outside the variable's options only changes the order; it cannot add SQL.
    assert len(leaderboard(store, "loss", "asc') OR ('1'='1")) == 3
    assert leaderboard(store, "loss", "desc", experiment="sweep-a' OR '1'='1") == []


def test_runs_by_status_uses_each_runs_latest_status(store: ChdbStore) -> None:
    rows = store.query(expand(panel_sql("Runs by status"), {"experiment": "sweep-a"}))
    assert sorted(rows) == [("Completed", 2), ("Failed", 1)]
