"""The UI's read queries (store/curves.py, run_table.py, run_view.py) on chDB and on the real ClickHouse server.

The dataset is :mod:`ui_data`'s (a 300,000-point curve with one spike, written
twice; overlays; lists, rows, tables, images, files, logs; statuses; hostile names).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from store import curves, run_table, run_view
from store.errors import FileNotFound, RunNotFound
from ui_data import BIG_POINTS, EXP, HOSTILE, NOW_MS, SPIKE_STEP, T0, ui_store


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = request.getfixturevalue("clickhouse_url") if request.param == "clickhouse" else None
    with ui_store(request.param, tmp_path_factory.mktemp("ui"), url) as reads:
        yield reads


# -- curves ------------------------------------------------------------------------------------------

def test_a_spike_among_300k_points_survives_full_zoom_out(store: Any) -> None:
    c = curves.scalar_curves(store, ["big"], "loss", width=500)
    assert c.mode == "minmax"
    assert len(c.xs) <= 2 * 500 and len(c.ys["big"]) == len(c.xs)
    assert max(v for v in c.ys["big"] if v is not None) == 100.0
    assert c.bucket == math.ceil(BIG_POINTS / 500)
    assert (c.x_min, c.x_max) == (0, BIG_POINTS - 1)
    assert c.xs == sorted(c.xs)
    # The spike sits in its own bucket's slot.
    spike_bucket = SPIKE_STEP // c.bucket
    assert abs(c.xs[c.ys["big"].index(100.0)] - (spike_bucket + 0.5) * c.bucket) <= c.bucket / 2


def test_zooming_in_reaches_raw_points_without_duplicates(store: Any) -> None:
    c = curves.scalar_curves(store, ["big"], "loss", width=500, x_min=SPIKE_STEP - 50, x_max=SPIKE_STEP + 50)
    assert c.mode == "raw"
    assert c.xs == [float(s) for s in range(SPIKE_STEP - 50, SPIKE_STEP + 51)]
    assert c.ys["big"][50] == 100.0
    finer = curves.scalar_curves(store, ["big"], "loss", width=500, x_min=100_000, x_max=200_000)
    assert finer.mode == "minmax" and finer.bucket == math.ceil(100_001 / 500)
    assert finer.x_min == 100_000 and max(v for v in finer.ys["big"] if v is not None) == 100.0


def test_overlay_shares_one_grid_and_fills_missing_runs(store: Any) -> None:
    raw = curves.scalar_curves(store, ["r1", "r2", "r3", "nope"], "acc", width=1000)
    assert raw.mode == "raw" and raw.xs == [float(s) for s in range(1000)]
    assert list(raw.ys) == ["r1", "r2", "r3", "nope"]
    assert all(len(ys) == 1000 for ys in raw.ys.values())
    assert raw.ys["r2"][399] is not None and raw.ys["r2"][400] is None
    assert set(raw.ys["r3"]) == {None} and raw.points == {"r1": 1000, "r2": 400, "r3": 0, "nope": 0}
    binned = curves.scalar_curves(store, ["r1", "r2"], "acc", width=100)
    assert binned.mode == "minmax" and len(binned.xs) == 200 and binned.bucket == 10
    assert binned.ys["r1"][0] == pytest.approx(0.5) and binned.ys["r2"][-1] is None


def test_time_axes(store: Any) -> None:
    wall = curves.scalar_curves(store, ["r2"], "acc", x="time", width=1000)
    assert wall.xs[0] == T0 and wall.xs[-1] == T0 + 399_000
    rel = curves.scalar_curves(store, ["r1", "r2"], "acc", x="relative", width=1000)
    # r2 started 5 s after T0: its step s is at s*1000 - 5000 ms after its start.
    assert rel.xs[0] == -5000.0 and rel.ys["r1"][rel.xs.index(0.0)] == pytest.approx(0.5)
    assert rel.ys["r2"][rel.xs.index(-5000.0)] == pytest.approx(0.51)
    with pytest.raises(ValueError):
        curves.scalar_curves(store, ["r1"], "acc", x="epoch")


def test_nan_inf_and_text_points_are_left_out(store: Any) -> None:
    c = curves.scalar_curves(store, ["odd"], "mixed", width=100)
    assert c.xs == [0.0, 2.0, 4.0] and c.ys["odd"] == [1.0, 3.0, 5.0]
    assert curves.scalar_curves(store, ["odd"], HOSTILE, width=100).ys["odd"] == [1.0, 2.0, 3.0]


def test_list_positions_follow_logging_order(store: Any) -> None:
    c = curves.list_curve(store, "odd", "norms")
    assert c.xs == [0.0, 1.0, 2.0, 3.0, 4.0] and c.ys["value"] == [0.9, 1.1, 1.3, 1.2, 0.8]
    binned = curves.list_curve(store, "odd", "norms", width=1)
    assert binned.mode == "minmax" and binned.ys["value"] == [1.3, 0.8]  # the max (position 2) comes first


def test_column_curve_plots_y_against_x(store: Any) -> None:
    c = curves.column_curve(store, "odd", "lr_schedule", "epoch", "lr")
    assert c.xs == [float(e) for e in range(20)]
    assert c.ys["value"][3] == pytest.approx(0.1 * 0.9 ** 3)
    binned = curves.column_curve(store, "odd", "lr_schedule", "epoch", "lr", width=4)
    assert binned.mode == "minmax" and len(binned.xs) == 8 and binned.ys["value"][0] == pytest.approx(0.1)
    assert curves.column_curve(store, "odd", "lr_schedule", "epoch", "missing").xs == []


# -- tables --------------------------------------------------------------------------------------------

def test_experiments_count_runs_and_statuses(store: Any) -> None:
    e = run_table.experiments(store, now_ms=NOW_MS)
    i = e.name.index(EXP)
    assert e.runs[i] == 8 and e.name.index("second") >= 0
    assert {s: e.status[s][i] for s in run_table.STATUSES} == {"Running": 1, "Completed": 5, "Failed": 2,
                                                               "Canceled": 0}


def test_run_table_columns(store: Any) -> None:
    t = run_table.run_table(store, EXP, metrics=["acc", "mixed", "note"], now_ms=NOW_MS)
    row = {r: i for i, r in enumerate(t.run_id)}
    assert t.status[row["lost"]] == "Failed" and "process lost" in (t.error[row["lost"]] or "")
    assert t.status[row["failed"]] == "Failed" and t.error[row["failed"]] == "ValueError: boom"
    assert t.status[row["odd"]] == "Running" and t.end_ms[row["odd"]] is None
    assert t.tags["team"][row["odd"]] == "vision" and t.tags["baseline"][row["odd"]] == ""
    assert t.tags["team"][row["r1"]] is None and t.properties["lr"][row["odd"]] == "0.01"
    acc = t.metrics["acc"]
    assert acc.last[row["r1"]] == pytest.approx(0.5 + 0.4 * 999 / 1000) and acc.min[row["r1"]] == pytest.approx(0.5)
    assert acc.last[row["r3"]] is None
    mixed = t.metrics["mixed"]
    assert (mixed.min[row["odd"]], mixed.max[row["odd"]]) == (1.0, 5.0) and mixed.text[row["odd"]] == "five"
    assert t.metrics["note"].last[row["odd"]] is None and t.metrics["note"].text[row["odd"]] == "resnet 'x'"
    assert ("acc", "scalar", 3) in t.metric_names
    children = run_table.run_table(store, parent="hd", now_ms=NOW_MS)
    assert sorted(children.run_id) == ["r1", "r2"] and children.experiment == EXP
    with pytest.raises(ValueError):
        run_table.run_table(store, EXP, metrics=[f"m{i}" for i in range(run_table.MAX_METRICS + 1)], now_ms=NOW_MS)


# -- run page ------------------------------------------------------------------------------------------

def test_run_details_and_catalogue(store: Any) -> None:
    d = run_view.run_details(store, "odd", now_ms=NOW_MS)
    assert d.status == "Running" and d.tags == {"baseline": "", "team": "vision"} and d.properties == {"lr": "0.01"}
    assert run_view.run_details(store, "hd", now_ms=NOW_MS).children == 2
    with pytest.raises(RunNotFound):
        run_view.run_details(store, "no such run", now_ms=NOW_MS)
    metrics = {m.name: m for m in run_view.run_metrics(store, "odd", EXP)}
    assert metrics["mixed"].chart == "curve"
    assert (metrics["note"].chart, metrics["note"].last) == ("value", "resnet 'x'")
    assert (metrics["single"].chart, metrics["single"].last) == ("value", 0.93)
    assert metrics["norms"].chart == "list" and metrics["norms"].count == 5
    assert metrics["lr_schedule"].columns == ["epoch", "lr"]
    assert metrics["confusion"].columns == ["correct"] and metrics["confusion"].text_columns == ["label"]
    assert metrics["samples"].count == 3 and metrics[HOSTILE].chart == "curve"


def test_tables_images_files_logs(store: Any) -> None:
    t = run_view.table_rows(store, "odd", "confusion")
    assert t.columns == ["label", "correct"] and t.cells == {"label": ["cat", "dog"], "correct": [97.0, 95.0]}
    assert run_view.table_rows(store, "odd", "norms").cells == {"norms": [0.9, 1.1, 1.3, 1.2, 0.8]}
    im = run_view.images(store, ["odd", "r1"], "samples")
    assert im.index == [0, 1, 2] and im.path == [f"images/samples/{i}.png" for i in range(3)]
    f = run_view.files(store, "odd")
    assert f.path[-1] == "outputs/model.txt" and f.size[-1] == len(b"new weights, longer") and all(f.complete)
    assert run_view.read_file(store, "odd", "outputs/model.txt") == (b"new weights, longer", "text/plain")
    with pytest.raises(FileNotFound):
        run_view.read_file(store, "odd", "outputs/none")
    tail = run_view.logs(store, "odd")
    assert tail.truncated and len(tail.message) == run_view.LOG_LINES_CAP
    assert tail.message[-1] == f"line {run_view.LOG_LINES_CAP + 9}" and tail.time_ms == sorted(tail.time_ms)
    since = run_view.logs(store, "odd", since_ms=T0 + run_view.LOG_LINES_CAP + 8)
    assert since.message == [f"line {run_view.LOG_LINES_CAP + 8}", f"line {run_view.LOG_LINES_CAP + 9}"]
    assert len(set(since.key)) == 2


def test_hostile_values_are_data(store: Any) -> None:
    assert run_table.run_table(store, HOSTILE, now_ms=NOW_MS).run_id == []
    assert curves.scalar_curves(store, [HOSTILE], HOSTILE).xs == []
    assert run_view.images(store, [HOSTILE]).path == []
