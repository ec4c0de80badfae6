"""store.curves' own logic (the grid, slots, the raw fallback) over canned query answers; the SQL itself
runs against chDB and ClickHouse in tests/integration/test_ui_store.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from store import curves


class CannedReads:
    """Answers each query name with fixed rows and remembers what was asked."""

    def __init__(self, answers: Mapping[str, list[tuple[Any, ...]]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        self.asked.append((name, dict(params)))
        return list(self.answers.get(name, []))


def _homes(*runs: str) -> list[tuple[Any, ...]]:
    return [(r, "exp", 0) for r in runs]


def test_buckets_share_one_grid_and_missing_buckets_are_null() -> None:
    # Steps 0..9, width 5: w=2 (5 buckets); r1 has buckets 0, 1, 4, r2 has 0 and 4; nobody has 2 or 3.
    reads = CannedReads({
        "ui_run_homes": _homes("r1", "r2"),
        "ui_scalar_step_extent": [(0, 9, 9000)],
        "ui_scalar_step_buckets": [
            (0, [0, 1, 4], ["1,2", "3,4", "9,8"], 5000),
            (1, [0, 4], ["5,5", "7,6.5"], 4000),
        ],
    })
    c = curves.scalar_curves(reads, ["r1", "r2", "r3"], "loss", width=5)
    assert c.mode == "minmax" and c.bucket == 2.0 and (c.x_min, c.x_max) == (0, 9)
    assert c.xs == [0.5, 1.5, 2.5, 3.5, 8.5, 9.5]
    assert c.ys == {"r1": [1, 2, 3, 4, 9, 8], "r2": [5, 5, None, None, 7, 6.5], "r3": [None] * 6}
    assert c.points == {"r1": 5000, "r2": 4000, "r3": 0}
    assert [name for name, _ in reads.asked] == ["ui_run_homes", "ui_scalar_step_extent", "ui_scalar_step_buckets"]
    args = reads.asked[2][1]
    assert (args["b_lo"], args["b_w"]) == (0, 2)


def test_few_points_come_raw_on_the_union_of_x() -> None:
    reads = CannedReads({
        "ui_run_homes": _homes("r1", "r2"),
        "ui_scalar_step_extent": [(0, 4, 5)],
        "ui_scalar_step_raw": [(0, 0, 1.0), (0, 2, 2.0), (0, 4, 3.0), (1, 2, 5.0), (1, 3, 0.1)],
    })
    c = curves.scalar_curves(reads, ["r1", "r2"], "loss", width=10)
    assert c.mode == "raw" and c.xs == [0.0, 2.0, 3.0, 4.0]
    assert c.ys == {"r1": [1.0, 2.0, None, 3.0], "r2": [None, 5.0, 0.1, None]}
    assert c.ys_json[1] == "[null,5.0,0.1,null]" and c.points == {"r1": 3, "r2": 2}
    # Five points in all: no series can need buckets, so none are asked for.
    assert [name for name, _ in reads.asked] == ["ui_run_homes", "ui_scalar_step_extent", "ui_scalar_step_raw"]
    # More in all than the budget, but few in each series: raw still, after the buckets counted them.
    reads = CannedReads({
        "ui_run_homes": _homes("r1", "r2"),
        "ui_scalar_step_extent": [(0, 4, 30)],
        "ui_scalar_step_buckets": [(0, [0], ["1,2"], 15), (1, [0], ["1,1"], 15)],
        "ui_scalar_step_raw": [(0, 0, 1.0), (1, 2, 5.0)],
    })
    c = curves.scalar_curves(reads, ["r1", "r2"], "loss", width=10)
    assert c.mode == "raw" and c.points == {"r1": 15, "r2": 15} and c.xs == [0.0, 2.0]


def test_a_zoom_wider_than_the_budget_stays_bucketed_and_fixes_the_grid() -> None:
    reads = CannedReads({
        "ui_run_homes": _homes("r1"),
        "ui_scalar_step_buckets": [(0, [0], ["1,2"], 3)],
    })
    c = curves.scalar_curves(reads, ["r1"], "loss", width=2, x_min=10.5, x_max=99.5)
    assert c.mode == "minmax" and [n for n, _ in reads.asked] == ["ui_run_homes", "ui_scalar_step_buckets"]
    args = reads.asked[1][1]
    # Integer x: the rows in range are bounded by integers, the grid by the range's outer integers.
    assert (args["r_lo"], args["r_hi"], args["b_lo"], args["b_w"]) == (11, 99, 10, 46)
    assert (c.x_min, c.x_max, c.bucket) == (10, 100, 46.0) and c.xs == [10 + 0.25 * 46, 10 + 0.75 * 46]


def test_overlays_of_many_runs_get_half_the_buckets() -> None:
    runs = [f"r{i}" for i in range(20)]
    reads = CannedReads({"ui_run_homes": _homes(*runs), "ui_scalar_step_extent": [(0, 99_999, 10**6)]})
    c = curves.scalar_curves(reads, runs, "loss", width=1000)
    assert c.xs == [] and c.series == tuple(runs) and c.ys_json == ("[]",) * 20
    assert reads.asked[2][1]["b_w"] == 200  # 500 buckets of 200 steps
    assert curves.scalar_curves(CannedReads({"ui_run_homes": _homes("r1"), "ui_scalar_step_extent": [(0, 0, 0)]}),
                                ["r1"], "loss").ys == {"r1": []}


def test_unknown_runs_read_empty_and_bad_asks_fail() -> None:
    c = curves.scalar_curves(CannedReads({}), ["nope"], "loss")
    assert c.mode == "raw" and c.ys == {"nope": []} and c.points == {"nope": 0}
    with pytest.raises(ValueError):
        curves.scalar_curves(CannedReads({"ui_run_homes": _homes("r1")}), ["r1"], "loss", width=0)
    with pytest.raises(ValueError):
        curves.scalar_curves(CannedReads({}), ["r1"], "loss", x="epoch")
