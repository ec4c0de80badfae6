"""Pure helpers of the measurement modules: histogram quantiles, the dashboard SQL, the CPU table, exports."""

from __future__ import annotations

import importlib

import pytest

from bench.e2e import histogram_quantile, parse_histogram
from bench.profiling import cpu_table
from bench.queries import curve_sql, leaderboard_sql
from bench.stack import Stack

EXPOSITION = """# HELP runstream_end_to_end_latency_seconds x
runstream_end_to_end_latency_seconds_bucket{le="0.1"} 10.0
runstream_end_to_end_latency_seconds_bucket{le="0.5"} 60.0
runstream_end_to_end_latency_seconds_bucket{le="1.0"} 100.0
runstream_end_to_end_latency_seconds_bucket{le="+Inf"} 100.0
runstream_end_to_end_latency_seconds_count 100.0
"""


def test_parse_histogram_reads_cumulative_buckets() -> None:
    assert parse_histogram(EXPOSITION) == {0.1: 10.0, 0.5: 60.0, 1.0: 100.0, float("inf"): 100.0}


def test_histogram_quantile_interpolates_between_snapshots() -> None:
    after = parse_histogram(EXPOSITION)
    assert histogram_quantile(0.5, {}, after) == pytest.approx(0.1 + 0.4 * (40 / 50))
    before = {0.1: 10.0, 0.5: 10.0, 1.0: 10.0, float("inf"): 10.0}  # the first ten were before the window
    assert histogram_quantile(0.99, before, after) == pytest.approx(0.5 + 0.5 * ((0.99 * 90 - 50) / 40))
    assert histogram_quantile(0.5, after, after) is None


def test_leaderboard_sql_is_the_dashboards_with_variables_encoded_and_the_bench_database() -> None:
    sql = leaderboard_sql("rs_bench_x_queries", experiment="my sweep", metric="val/acc", direction="desc")
    assert "FROM `rs_bench_x_queries`.metric_scalars" in sql and "runstream." not in sql
    assert "decodeURLComponent('my%20sweep')" in sql and "decodeURLComponent('val%2Facc')" in sql
    assert "argMax(value, (step, time_ms))" in sql and "$" not in sql


def test_curve_sql_buckets_100_runs_to_1000_points() -> None:
    sql = curve_sql("db", runs=100, buckets=1000)
    assert "intDiv(step * 1000, span)" in sql and "'run_99'" in sql and "'run_100'" not in sql


def test_cpu_table_shares_of_capacity() -> None:
    text = cpu_table([{"elapsed_s": 10.0, "cpu_s": {"producers": 4.0, "ingest": 5.0, "kafka": 1.0,
                                                     "clickhouse": 8.0}}], cores=2)
    header, row = text.splitlines()
    assert header.split()[:3] == ["trial", "wall", "s"]
    assert "4.0s   20%" in row and "8.0s   40%" in row and row.rstrip().endswith("2.0s")


def test_stack_names_are_unique_valid_and_remembered_for_cleanup() -> None:
    stack = Stack(kafka="127.0.0.1:9092", clickhouse="clickhouse://127.0.0.1:9000/runstream", tag="abc123")
    assert stack.name("e2e") == "rs_bench_abc123_e2e"
    assert stack.url("rs_bench_abc123_e2e") == "clickhouse://127.0.0.1:9000/rs_bench_abc123_e2e"
    assert stack.databases == ["rs_bench_abc123_e2e"]


@pytest.mark.parametrize(("module", "names"), [
    ("bench", []),
    ("bench.results", ["FORMAT", "Figure", "FIGURES", "KEYS", "Summary", "summarize", "goal_met", "build_document",
                       "missed_goals", "render_markdown", "format_value"]),
    ("bench.stack", ["Stack", "from_env", "answers", "pid_listening_on", "drop_databases", "delete_topics"]),
    ("bench.child", ["Child", "ChildFailed", "run_child", "ready_then_wait", "emit", "REPO"]),
    ("bench.e2e", ["Ingest", "throughput", "latency", "histogram_quantile", "parse_histogram", "parse_counter",
                   "stage_costs", "BEFORE_US_PER_POINT"]),
    ("bench.server_cpu", ["CpuSnapshot", "snapshot", "tagged_query", "queries_cpu_s", "wait_for_merges",
                          "QUERY_TAG"]),
    ("bench.storage", ["measure"]),
    ("bench.cluster", ["ClusterStack", "measure"]),
    ("bench.queries", ["measure", "leaderboard_sql", "curve_sql", "LOAD_SQL", "RUNS", "METRICS", "STEPS"]),
    ("bench.profiling", ["top_entries", "profile_ingest", "cpu_table"]),
    ("bench.machine", ["describe", "load_snapshot", "busy_processes"]),
    ("bench.codec", ["measure", "sdk_buffers", "scalar_batches"]),
    ("bench.first_assignment", ["measure", "first_assignment_at"]),
    ("bench.sdk", ["measure"]),
    ("bench.peers", ["measure"]),
    ("bench.raw_kafka", ["measure", "prepare_messages"]),
    ("bench.raw_clickhouse", ["measure", "scalar_columns", "COLUMNS"]),
    ("bench.load", ["METRICS", "SENTINEL", "SENTINEL_EVERY_S"]),
    ("bench.run", ["main", "Plan"]),
    ("bench.mlflow_server", ["measure", "measure_client", "start_mlflow_server", "start_runstream_server",
                             "start_null_server", "stop_server", "free_port"]),
])
def test_exports_are_pinned(module: str, names: list[str]) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(names)


def test_parse_counter_reads_one_labelled_sample() -> None:
    from bench.e2e import parse_counter

    text = ('# TYPE runstream_points_written_total counter\n'
            'runstream_points_written_total{table="metric_names"} 5.0\n'
            'runstream_points_written_total{table="metric_scalars"} 1.2e+06\n')
    assert parse_counter(text, "runstream_points_written_total", {"table": "metric_scalars"}) == 1_200_000
    assert parse_counter(text, "runstream_points_written_total", {"table": "runs"}) == 0


def test_stage_costs_are_medians_per_point() -> None:
    from bench.e2e import stage_costs

    def trial(scale: float) -> dict:
        return {"points": 1_000_000, "producer_log_thread_cpu_s": [0.2 * scale, 0.3 * scale],
                "cpu_s": {"producers_background": 0.1 * scale, "kafka": 0.2, "ingest": 0.3},
                "clickhouse_split_s": {"inserts": 0.1, "merges": 0.2, "queries": 0.05}}

    costs = stage_costs([trial(1), trial(2), trial(3)])
    assert round(costs["SDK: `run.log` calls (the training thread)"], 6) == 1.0
    assert round(costs["ClickHouse: merges"], 6) == 0.2 and len(costs) == 7


def test_server_cpu_snapshot_reads_this_process() -> None:
    import os

    from bench.server_cpu import snapshot

    first = snapshot(os.getpid())
    sum(i * i for i in range(200_000))
    spent = snapshot(os.getpid()) - first
    assert spent.total_s >= 0 and spent.merges_s == 0
    assert snapshot(None).total_s != snapshot(None).total_s  # NaN when there is no process


def test_codec_batches_hold_every_point() -> None:
    from bench.codec import scalar_batches

    batches = scalar_batches(40_000, batch=16_384)
    assert [len(b) for b in batches] == [16_384, 16_384, 7_232]


def test_first_assignment_at_skips_empty_assignments() -> None:
    from bench.first_assignment import first_assignment_at

    log = ("2026-12-01 21:55:13,582 INFO runstream.ingest: partitions assigned: []\n"
           "2026-12-01 21:55:14,207 INFO runstream.ingest: partitions assigned: [4, 5, 6, 7]\n")
    at = first_assignment_at(log)
    assert at is not None and at - first_assignment_at(log.splitlines()[1]) == 0  # type: ignore[operator]
    assert first_assignment_at(log.splitlines()[0]) is None


def test_mlflow_server_analysis_states_the_client_bound() -> None:
    from bench.run import _mlflow_server_analysis

    text = _mlflow_server_analysis({"bound": {"client_alone_points_per_s": 20_000.0, "ratio_bound": 8.0,
                                              "ms_per_batch": {"client_alone": 50.0, "runstream": 60.0,
                                                               "mlflow": 400.0},
                                              "runstream_server_ms_per_batch": 10.0}})
    assert "20,000 points/s, 50 ms" in text and "more than 8.0x" in text and "10 ms more" in text


def test_null_server_answers_every_call_and_reads_bodies(tmp_path) -> None:
    import http.client

    from bench.mlflow_server import free_port, start_null_server, stop_server

    port = free_port()
    proc = start_null_server(tmp_path, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for method, path, body in (("POST", "/api/2.0/mlflow/runs/log-batch", b'{"metrics": []}' * 1000),
                                   ("POST", "/api/2.0/mlflow/runs/create", b"{}"),
                                   ("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x", None)):
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read().startswith(b"{")
        conn.close()
    finally:
        stop_server(proc)

