"""The web UI in a real headless Chromium: how long until the data is drawn.

Keys: ``ui_curve_1m_points_ms``, ``ui_runs_table_1000_ms``, ``ui_overlay_100_runs_ms``.

The data is made by the ClickHouse server itself (``INSERT ... SELECT FROM
numbers()``) into a bench database of the real schema, merged as for finished
runs: one run with a 1,000,000-point curve (one spike), an experiment of 1,000
runs (statuses, three properties, two metrics of 100 steps), and 100 runs with
10,000 points each of one metric. ``runstream server`` serves it on a free port
of 127.0.0.1; each trial opens the page as a new document in a fresh headless
Chromium and reads, from the page, when the chart or table was drawn
(``performance.now()``, whose zero is the navigation's start). The page's own
record also gives the points that came over the wire.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .child import REPO

__all__ = ["measure", "server_command", "CURVE_POINTS", "TABLE_RUNS", "OVERLAY_RUNS", "OVERLAY_POINTS", "SPIKE_STEP"]

CURVE_POINTS = 1_000_000
SPIKE_STEP = 543_210
TABLE_RUNS = 1_000
OVERLAY_RUNS, OVERLAY_POINTS = 100, 10_000
T0 = 1_800_000_000_000

_LOAD = [
    # The 1M-point run. (INSERT ... SELECT throughout: clickhouse-driver sends no inline VALUES.)
    "INSERT INTO {db}.runs (run_id, experiment, parent_run_id, display_name, kind, host, pid, start_ms, writer_id, seq) "
    "SELECT 'curve_1m', 'bench-ui-curve', '', 'one million points', 'interactive', 'bench', 1, {t0}, 'w', 1",
    "INSERT INTO {db}.run_status (run_id, experiment, status, error_details, created_ms, writer_id, seq) "
    "SELECT 'curve_1m', 'bench-ui-curve', 'Completed', '', {t0} + 1000000, 'w', 2",
    "INSERT INTO {db}.metric_names (run_id, experiment, name, kind, description, first_ms) "
    "SELECT 'curve_1m', 'bench-ui-curve', 'loss', 'scalar', '', {t0}",
    "INSERT INTO {db}.metric_scalars (experiment, run_id, name, step, time_ms, value, text, is_text, writer_id, seq, "
    "idx, created_ms) SELECT 'bench-ui-curve', 'curve_1m', 'loss', number, {t0} + number, "
    "if(number = {spike}, 100.0, 1.0 + 0.1 * sin(number / 5000)), '', 0, 'w', 3 + intDiv(number, 16384), "
    "number % 16384, {t0} FROM numbers({curve_points})",
    # 1,000 runs in one experiment.
    "INSERT INTO {db}.runs (run_id, experiment, parent_run_id, display_name, kind, host, pid, start_ms, writer_id, seq) "
    "SELECT concat('t_', toString(number)), 'bench-ui-table', '', concat('trial ', toString(number)), 'interactive', "
    "'bench', 1, {t0} + number * 1000, 'w', number FROM numbers({table_runs})",
    "INSERT INTO {db}.run_status (run_id, experiment, status, error_details, created_ms, writer_id, seq) "
    "SELECT concat('t_', toString(number)), 'bench-ui-table', if(number % 10 = 0, 'Failed', 'Completed'), "
    "if(number % 10 = 0, 'boom', ''), {t0} + number * 1000 + 60000, 'w', 100000 + number FROM numbers({table_runs})",
    "INSERT INTO {db}.run_attributes (run_id, experiment, kind, key, value, has_value, created_ms, writer_id, seq) "
    "SELECT concat('t_', toString(intDiv(number, 3))), 'bench-ui-table', 'property', "
    "['lr', 'depth', 'optimizer'][number % 3 + 1], "
    "[toString(0.001 * (1 + intDiv(number, 3) % 7)), toString(2 + intDiv(number, 3) % 5), 'adam'][number % 3 + 1], "
    "1, {t0}, 'w', 200000 + number FROM numbers({table_runs} * 3)",
    "INSERT INTO {db}.metric_names (run_id, experiment, name, kind, description, first_ms) "
    "SELECT concat('t_', toString(intDiv(number, 2))), 'bench-ui-table', ['acc', 'loss'][number % 2 + 1], 'scalar', "
    "'', {t0} FROM numbers({table_runs} * 2)",
    "INSERT INTO {db}.metric_scalars (experiment, run_id, name, step, time_ms, value, text, is_text, writer_id, seq, "
    "idx, created_ms) SELECT 'bench-ui-table', concat('t_', toString(intDiv(number, 200))), "
    "['acc', 'loss'][intDiv(number, 100) % 2 + 1], number % 100, {t0} + number % 100, "
    "(intHash32(intDiv(number, 200)) % 1000) / 1000.0 * (number % 100) / 100, '', 0, "
    "concat('w', toString(intDiv(number, 200))), 1, number % 200, {t0} FROM numbers({table_runs} * 200)",
    # 100 runs x 10,000 points of one metric.
    "INSERT INTO {db}.runs (run_id, experiment, parent_run_id, display_name, kind, host, pid, start_ms, writer_id, seq) "
    "SELECT concat('o_', toString(number)), 'bench-ui-overlay', '', concat('run ', toString(number)), 'interactive', "
    "'bench', 1, {t0}, 'w', number FROM numbers({overlay_runs})",
    "INSERT INTO {db}.run_status (run_id, experiment, status, error_details, created_ms, writer_id, seq) "
    "SELECT concat('o_', toString(number)), 'bench-ui-overlay', 'Completed', '', {t0} + 60000, 'w', 1000 + number "
    "FROM numbers({overlay_runs})",
    "INSERT INTO {db}.metric_names (run_id, experiment, name, kind, description, first_ms) "
    "SELECT concat('o_', toString(number)), 'bench-ui-overlay', 'loss', 'scalar', '', {t0} FROM numbers({overlay_runs})",
    "INSERT INTO {db}.metric_scalars (experiment, run_id, name, step, time_ms, value, text, is_text, writer_id, seq, "
    "idx, created_ms) SELECT 'bench-ui-overlay', concat('o_', toString(intDiv(number, {overlay_points}))), 'loss', "
    "number % {overlay_points}, {t0} + number % {overlay_points}, "
    "1.0 / (1 + (number % {overlay_points}) / 100) + (intHash32(intDiv(number, {overlay_points})) % 100) / 1000.0, "
    "'', 0, concat('w', toString(intDiv(number, {overlay_points}))), 1, number % {overlay_points}, {t0} "
    "FROM numbers({overlay_runs} * {overlay_points})",
]


def server_command(clickhouse_url: str, port: int) -> list[str]:
    """The server the bench measures, serving ``clickhouse_url`` on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "runstream", "server", "--clickhouse", clickhouse_url, "--port", str(port)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"runstream server did not answer at {url} within {timeout:.0f}s")
        time.sleep(0.2)


_DRAWN = "const d = (window.__rs || {}).drawn || []; return d.length >= arguments[0] ? d : null;"
_TABLE = "const t = (window.__rs || {}).tables || []; return t.length ? t : null;"


def _trial(base: str, path: str, script: str, count: int = 1) -> dict[str, Any]:
    from runstream.server.browser import Browser

    with Browser(width=1400, height=900) as browser:
        browser.open(base + path)
        records = browser.wait_for(script, 60.0, count)
        errors = browser.console_errors()
        outside = browser.requests_elsewhere(base)
    if errors or outside:
        raise RuntimeError(f"UI bench page {path}: console errors {errors}, requests elsewhere {outside}")
    return dict(records[count - 1])


def measure(stack: Any, *, trials: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Load the data, start the server, time the three pages ``trials`` times each."""
    from store import open_store

    database = stack.name("ui")
    url = stack.url(database)
    store = open_store(url, Path("."))
    store.migrate()
    store.close()
    client = stack.client(database)
    params = dict(db=f"`{database}`", t0=T0, spike=SPIKE_STEP, curve_points=CURVE_POINTS, table_runs=TABLE_RUNS,
                  overlay_runs=OVERLAY_RUNS, overlay_points=OVERLAY_POINTS)
    t0 = time.perf_counter()
    for sql in _LOAD:
        t1 = time.perf_counter()
        try:
            client.execute(sql.format(**params))
        except Exception as exc:
            raise RuntimeError(f"after {time.perf_counter() - t1:.1f}s: {sql[:120]}") from exc
    for table in ("metric_scalars", "runs", "run_status", "run_attributes", "metric_names"):
        client.execute(f"OPTIMIZE TABLE `{database}`.{table} FINAL")
    load_s = time.perf_counter() - t0
    client.disconnect()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    server = subprocess.Popen(server_command(url, port), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    out: dict[str, list[float]] = {"ui_curve_1m_points_ms": [], "ui_runs_table_1000_ms": [],
                                   "ui_overlay_100_runs_ms": []}
    details: dict[str, Any] = {"load_s": load_s, "curve": [], "table": [], "overlay": []}
    overlay = "#/compare?" + "&".join([
        "experiment=bench-ui-overlay", "metric=loss",
        "runs=" + quote(",".join(f"o_{i}" for i in range(OVERLAY_RUNS)), safe=",")])
    try:
        _wait_http(base + "health")
        # One untimed visit each: the server's first queries read from disk into the page cache.
        _trial(base, "#/run/curve_1m", _DRAWN)
        for _ in range(trials):
            curve = _trial(base, "#/run/curve_1m", _DRAWN)
            if curve["points"] > 4000 or curve.get("max", math.inf) < 100:
                raise RuntimeError(f"the 1M-point curve came as {curve}")
            out["ui_curve_1m_points_ms"].append(curve["at"])
            details["curve"].append(curve)
            table = _trial(base, "#/experiment/bench-ui-table", _TABLE)
            if table["rows"] != TABLE_RUNS:
                raise RuntimeError(f"the runs table showed {table}")
            out["ui_runs_table_1000_ms"].append(table["at"])
            details["table"].append(table)
            drawn = _trial(base, overlay, _DRAWN)
            if drawn["series"] != OVERLAY_RUNS:
                raise RuntimeError(f"the overlay drew {drawn}")
            out["ui_overlay_100_runs_ms"].append(drawn["at"])
            details["overlay"].append(drawn)
    finally:
        server.terminate()
        try:
            _, err = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
        details["server_stderr_tail"] = (err or "")[-2000:]
    return out, details
