"""Read path figures on 10M points: the leaderboard and a downsampled curve.

Keys: ``leaderboard_query_ms``, ``curve_query_ms``.

The data (1,000 runs x 10 metrics x 1,000 steps) is made by the server itself
(``INSERT INTO metric_scalars SELECT ... FROM numbers(10000000)``) into a bench
database migrated with the real schema: the fastest direct insert, and no
Python in the way. Parts are merged (``OPTIMIZE ... FINAL``) before timing, as
for a finished sweep. Each query runs once untimed, then ``repeats`` times.

- Leaderboard: the sweep-analytics dashboard's own SQL (its "Leaderboard"
  panel, read from deploy/grafana/dashboards/sweep-analytics.json), expanded as
  Grafana would (percent-encoded variables), pointed at the bench database.
- Curve: one metric of 100 runs, each cut into at most 1,000 step buckets
  (average value per bucket), every row fetched into Python.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .child import REPO

__all__ = ["measure", "leaderboard_sql", "curve_sql", "LOAD_SQL", "RUNS", "METRICS", "STEPS"]

RUNS, METRICS, STEPS = 1_000, 10, 1_000
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "sweep-analytics.json"
EXPERIMENT = "bench-sweep"
METRIC = "metric_3"

LOAD_SQL = (
    "INSERT INTO {db}.metric_scalars (experiment, run_id, name, step, time_ms, value, text, is_text, writer_id, "
    "seq, idx, created_ms) "
    "SELECT '" + EXPERIMENT + "', concat('run_', toString(intDiv(number, {per_run}))), "
    "concat('metric_', toString(intDiv(number, {steps}) % {metrics})), number % {steps}, "
    "1800000000000 + (number % {steps}) * 1000, "
    "(intHash32(intDiv(number, {per_run})) % 1000) / 1000.0 + 1.0 / (1 + number % {steps}), '', 0, "
    "concat('w_', toString(intDiv(number, {per_run}))), intDiv(number % {per_run}, 10000) + 2, number % 10000, "
    "1800000000000 FROM numbers({rows})"
)
"""Run r, metric m, step s; a value that falls with the step and differs by run (a sweep's losses)."""


def leaderboard_sql(database: str, *, experiment: str = EXPERIMENT, metric: str = METRIC,
                    direction: str = "asc", dashboard: Path = DASHBOARD) -> str:
    """The dashboard's Leaderboard SQL with its variables expanded (percent-encoded, as Grafana does)."""
    panels = json.loads(dashboard.read_text(encoding="utf-8"))["panels"]
    [sql] = [t["rawSql"] for p in panels if p.get("title") == "Leaderboard" for t in p.get("targets", [])]
    values = {"experiment": experiment, "metric": metric, "direction": direction}
    sql = re.sub(r"\$\{(\w+):percentencode\}", lambda m: urllib.parse.quote(values[m.group(1)], safe="-_.~"), sql)
    if "$" in sql:
        raise ValueError(f"unexpanded macro in the leaderboard SQL: {sql}")
    return sql.replace("FROM runstream.", f"FROM `{database}`.")


def curve_sql(database: str, *, runs: int = 100, buckets: int = 1000) -> str:
    """One metric of ``runs`` runs, at most ``buckets`` points per run (avg per step bucket)."""
    run_list = ", ".join(f"'run_{i}'" for i in range(runs))
    return (
        f"SELECT run_id, intDiv(step * {buckets}, span) AS bucket, min(step), avg(value) "
        f"FROM `{database}`.metric_scalars "
        f"ANY INNER JOIN (SELECT run_id, max(step) + 1 AS span FROM `{database}`.metric_scalars "
        f"  WHERE experiment = '{EXPERIMENT}' AND name = '{METRIC}' AND run_id IN ({run_list}) GROUP BY run_id) "
        f"USING run_id "
        f"WHERE experiment = '{EXPERIMENT}' AND name = '{METRIC}' AND run_id IN ({run_list}) AND is_text = 0 "
        f"GROUP BY run_id, bucket ORDER BY run_id, bucket"
    )


def _time(client: Any, sql: str, repeats: int) -> tuple[list[float], int, dict[str, Any]]:
    rows = client.execute(sql)  # untimed: the first run reads from disk into the page cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = client.execute(sql)
        times.append((time.perf_counter() - t0) * 1000)
    progress = client.last_query.progress if client.last_query is not None else None
    info = {"rows_read": getattr(progress, "rows", None), "bytes_read": getattr(progress, "bytes", None)}
    return times, len(rows), info


def measure(stack: Any, *, repeats: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Load 10M rows, then time both queries ``repeats`` times."""
    from store import open_store

    database = stack.name("queries")
    store = open_store(stack.url(database), Path("."))
    store.migrate()
    store.close()
    client = stack.client(database)
    rows = RUNS * METRICS * STEPS
    t0 = time.perf_counter()
    client.execute(LOAD_SQL.format(db=f"`{database}`", per_run=METRICS * STEPS, steps=STEPS, metrics=METRICS,
                                   rows=rows))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.execute(f"OPTIMIZE TABLE `{database}`.metric_scalars FINAL")
    optimize_s = time.perf_counter() - t0
    count = client.execute(f"SELECT count() FROM `{database}`.metric_scalars")[0][0]
    if count != rows:
        raise RuntimeError(f"query data: {count} rows of {rows}")
    board_sql = leaderboard_sql(database)
    board_ms, board_rows, board_info = _time(client, board_sql, repeats)
    curve = curve_sql(database)
    curve_ms, curve_rows, curve_info = _time(client, curve, repeats)
    client.execute(f"DROP DATABASE IF EXISTS `{database}`")
    client.disconnect()
    details = {"rows": rows, "load_s": load_s, "load_rows_per_s": rows / load_s, "optimize_s": optimize_s,
               "repeats": repeats, "leaderboard": {"rows_returned": board_rows, **board_info,
                                                   "median_ms": statistics.median(board_ms)},
               "curve": {"rows_returned": curve_rows, **curve_info, "median_ms": statistics.median(curve_ms)},
               "leaderboard_sql": board_sql}
    return {"leaderboard_query_ms": board_ms, "curve_query_ms": curve_ms}, details
