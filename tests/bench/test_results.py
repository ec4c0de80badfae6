"""bench.results: trial statistics, goals, the latest.json document and BENCHMARKS.md rendering."""

from __future__ import annotations

import json
import math

import pytest

from bench import results
from bench.results import FIGURES, KEYS, Summary, build_document, goal_met, missed_goals, render_markdown, summarize

ISSUE_KEYS = {
    "sdk_log_ns_median", "sdk_log_ns_p99", "sdk_log_calls_per_s", "vs_wandb_log_speedup", "vs_mlflow_log_speedup",
    "codec_points_per_s", "e2e_points_per_s", "e2e_latency_p50_s", "e2e_latency_p99_s", "raw_kafka_points_per_s",
    "raw_clickhouse_points_per_s", "pipeline_efficiency", "leaderboard_query_ms", "curve_query_ms",
    "sdk_rss_mb_per_million_buffered", "ingest_rss_mb",
    # issue 14: the web UI in a real headless browser
    "ui_curve_1m_points_ms", "ui_runs_table_1000_ms", "ui_overlay_100_runs_ms",
    # issue 13: the MLflow client against runstream server and against mlflow server
    "vs_mlflow_server_log_batch_speedup", "mlflow_get_history_100k_ms", "mlflow_server_get_history_100k_ms",
    "ingest_first_assignment_s",  # issue 12, item 3
    # issue 16: the local cluster
    "cluster_e2e_points_per_s", "cluster_broker_failover_s",
    # issue 18: sweeps
    "sweep_launch_overhead_ms", "sweep_policy_decision_s",
    # issue 17
    "producer_cpu_us_per_point", "ingest_cpu_us_per_point", "clickhouse_cpu_us_per_point", "wire_bytes_per_point",
    "stored_bytes_per_point",
}


def _summaries(value: float = 1.0) -> dict[str, Summary]:
    return {k: summarize([value, value * 2, value * 3]) for k in KEYS}


def _doc(summaries: dict[str, Summary] | None = None, profiles: dict | None = None) -> dict:
    return build_document(_summaries() if summaries is None else summaries,
                          machine={"cpu_model": "Test CPU", "logical_cpus": 2}, load={"note": "quiet"},
                          details={"notes": ["a note"]}, profiles=profiles or {},
                          generated_at="2026-01-01T00:00:00Z", duration_s=12.34)


def test_keys_are_the_issues_names_once_each() -> None:
    assert set(KEYS) == ISSUE_KEYS and len(KEYS) == len(ISSUE_KEYS)


def test_goals_are_the_issues() -> None:
    goals = {f.key: (f.goal, f.direction) for f in FIGURES if f.goal is not None}
    assert goals == {
        "sdk_log_ns_median": (600, "min"), "vs_wandb_log_speedup": (10, "max"), "vs_mlflow_log_speedup": (100, "max"),
        "e2e_points_per_s": (500_000, "max"), "pipeline_efficiency": (0.5, "max"), "e2e_latency_p99_s": (2, "min"),
        "leaderboard_query_ms": (100, "min"), "ui_curve_1m_points_ms": (1500, "min"),
        "ui_runs_table_1000_ms": (2000, "min"), "ui_overlay_100_runs_ms": (2000, "min"),
        "vs_mlflow_server_log_batch_speedup": (10, "max"), "codec_points_per_s": (10_000_000, "max"),
        "ingest_first_assignment_s": (3, "min"),
        "producer_cpu_us_per_point": (0.5, "min"), "ingest_cpu_us_per_point": (0.5, "min"),
        "clickhouse_cpu_us_per_point": (0.5, "min"),
    }


def test_summarize_takes_median_min_max_and_drops_nan() -> None:
    s = summarize([3.0, 1.0, math.nan, 2.0, 10.0])
    assert (s.median, s.min, s.max, s.trials) == (2.5, 1.0, 10.0, (3.0, 1.0, 2.0, 10.0))
    assert summarize([5]).median == 5.0
    with pytest.raises(ValueError):
        summarize([math.nan])
    with pytest.raises(ValueError):
        summarize([])


def test_goal_met_respects_direction_and_bounds() -> None:
    by = {f.key: f for f in FIGURES}
    assert goal_met(by["sdk_log_ns_median"], 600) is True
    assert goal_met(by["sdk_log_ns_median"], 601) is False
    assert goal_met(by["e2e_points_per_s"], 500_000) is True
    assert goal_met(by["e2e_points_per_s"], 499_999) is False
    assert goal_met(by["curve_query_ms"], 1e9) is None


def test_document_top_level_numbers_are_medians_with_details_under_figures() -> None:
    doc = _doc()
    for key in KEYS:
        assert doc[key] == 2.0
        assert doc["figures"][key]["min"] == 1.0 and doc["figures"][key]["max"] == 3.0
        assert doc["figures"][key]["trials"] == [1.0, 2.0, 3.0]
    assert doc["missing"] == []
    assert doc["machine"]["cpu_model"] == "Test CPU"
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_document_flags_missing_and_rejects_unknown_keys() -> None:
    partial = _summaries()
    del partial["curve_query_ms"]
    doc = _doc(partial)
    assert doc["curve_query_ms"] is None and doc["missing"] == ["curve_query_ms"]
    with pytest.raises(ValueError):
        _doc({**_summaries(), "not_a_figure": summarize([1])})


def test_missed_goals_lists_goals_missed_or_unmeasured() -> None:
    doc = {k: None for k in KEYS}
    doc.update(sdk_log_ns_median=500, vs_wandb_log_speedup=150, vs_mlflow_log_speedup=4000, e2e_points_per_s=200_000,
               pipeline_efficiency=0.6, e2e_latency_p99_s=0.8, leaderboard_query_ms=None, ui_curve_1m_points_ms=900,
               ui_runs_table_1000_ms=800, ui_overlay_100_runs_ms=1200, vs_mlflow_server_log_batch_speedup=12,
               ingest_first_assignment_s=2.5, codec_points_per_s=2e7, producer_cpu_us_per_point=0.3,
               ingest_cpu_us_per_point=0.4, clickhouse_cpu_us_per_point=0.5)
    assert missed_goals(doc) == ["e2e_points_per_s", "leaderboard_query_ms"]


@pytest.mark.parametrize(("value", "unit", "text"), [
    (481.4, "ns", "481 ns"), (812_345.0, "calls/s", "812,000 calls/s"), (149.2, "x", "149x"), (9.87, "x", "9.9x"),
    (86.81, "ms", "86.8 ms"), (211.3, "ms", "211 ms"), (0.7912, "s", "0.79 s"), (0.519, "ratio", "0.52"),
    (32.62, "MB", "32.6 MB"), (math.nan, "s", "n/a"), (0.4321, "µs", "0.43 µs"), (8.04, "B", "8.0 B"),
])
def test_format_value(value: float, unit: str, text: str) -> None:
    assert results.format_value(value, unit) == text


def test_markdown_has_a_row_per_figure_with_goal_measured_and_met() -> None:
    summaries = _summaries()
    summaries["sdk_log_ns_median"] = summarize([400, 500, 600])
    summaries["e2e_points_per_s"] = summarize([100_000, 200_000, 300_000])
    md = render_markdown(_doc(summaries))
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "`" in ln]
    assert len(rows) == len(FIGURES)
    [sdk] = [r for r in rows if "`sdk_log_ns_median`" in r]
    assert "<= 600 ns" in sdk and "500 ns (400 ns – 600 ns)" in sdk and sdk.endswith("| yes |")
    [e2e] = [r for r in rows if "`e2e_points_per_s`" in r]
    assert ">= 500,000 points/s" in e2e and e2e.endswith("| **no** |")
    [curve] = [r for r in rows if "`curve_query_ms`" in r]
    assert curve.endswith("| — |")
    assert "Test CPU" in md and "quiet" in md and "- a note" in md
    for figure in FIGURES:
        assert f"**`{figure.key}`**: {figure.method}" in md


def test_markdown_explains_each_missed_goal_with_its_profile() -> None:
    summaries = _summaries()
    summaries["e2e_points_per_s"] = summarize([200_000])
    profile = {"analysis": "The server is the bottleneck.",
               "blocks": [{"title": "cProfile top", "text": "ncalls tottime\n 1 2.0 decode\n"}]}
    md = render_markdown(_doc(summaries, profiles={"e2e_points_per_s": profile}))
    section = md.split("## Goals missed, and why", 1)[1]
    assert "### `e2e_points_per_s`: 200,000 points/s against >= 500,000 points/s" in section
    assert "The server is the bottleneck." in section
    assert "cProfile top:\n\n```\nncalls tottime\n 1 2.0 decode\n```" in section
    # sdk_log_ns_median (2.0 ns) meets its goal: no section for it
    assert "### `sdk_log_ns_median`" not in section


def test_markdown_without_missed_goals_has_no_missed_section() -> None:
    summaries = {k: summarize([1.0]) for k in KEYS}
    for key, value in (("vs_wandb_log_speedup", 100.0), ("vs_mlflow_log_speedup", 1000.0),
                       ("e2e_points_per_s", 600_000.0), ("pipeline_efficiency", 0.9),
                       ("vs_mlflow_server_log_batch_speedup", 12.0),
                       ("codec_points_per_s", 2e7), ("producer_cpu_us_per_point", 0.3),
                       ("ingest_cpu_us_per_point", 0.3), ("clickhouse_cpu_us_per_point", 0.3),
                       ("sdk_log_ns_median", 500.0)):
        summaries[key] = summarize([value])
    assert "Goals missed" not in render_markdown(_doc(summaries))


def test_markdown_shows_cpu_per_point_by_stage_now_and_before() -> None:
    doc = _doc()
    doc["details"]["cpu_per_point"] = {"now": {"Kafka broker": 0.1, "ClickHouse: merges": 0.2,
                                               "ClickHouse: the bench's own queries (apart)": 0.05},
                                       "before": {"Kafka broker": 0.2, "`runstream ingest`": 1.39}}
    md = render_markdown(doc)
    section = md.split("## CPU per point, stage by stage", 1)[1]
    assert "| Kafka broker | 0.10 |" in section and "| **All stages** | **0.30** |" in section
    assert "| **All stages** | **1.59** |" in section


def test_markdown_carries_the_choices_text_verbatim() -> None:
    doc = _doc()
    doc["details"]["choices"] = "## Choices measured\n\nWe tried X; kept Y.\n"
    text = render_markdown(doc)
    assert "## Choices measured\n\nWe tried X; kept Y.\n" in text
    assert "## Choices measured" not in render_markdown(_doc())


def test_the_choices_file_exists_and_opens_with_a_heading() -> None:
    from bench.child import REPO

    assert (REPO / "bench" / "choices.md").read_text(encoding="utf-8").startswith("## ")
