"""`runstream server` as a command: the embedded default (live while runs log) and the ClickHouse server."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from clickhouse_driver import Client

from store import ClickHouseStore
from ui_data import EXP, SPIKE_STEP, fill, runstream_server


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_embedded_server_shows_a_running_run_live(tmp_path: Path) -> None:
    from producers import Experiment, Workspace
    from schemas.settings import WorkspaceSettings

    embedded = WorkspaceSettings.resolve({"home": str(tmp_path)}, env={})  # not the stack `make test` exports
    with runstream_server(tmp_path) as base, Workspace(settings=embedded) as ws:
        run = Experiment(ws, "live").start_logging(display_name="still training")
        for step in range(100):
            run.log("loss", 1.0 / (step + 1))
        ws.flush()
        url = f"{base}api/ui/curves?run={quote(run.id)}&name=loss&width=500"
        _until(lambda: _get(url)["points"] == [100])
        assert _get(f"{base}api/ui/run?run={quote(run.id)}")["run"]["status"] == "Running"
        for step in range(100, 250):
            run.log("loss", 1.0 / (step + 1))
        ws.flush()
        _until(lambda: _get(url)["points"] == [250])  # a new point shows up without restarting anything
        run.complete()
        ws.flush()
        _until(lambda: _get(f"{base}api/ui/run?run={quote(run.id)}")["run"]["status"] == "Completed")
        # A second server on the same home reads through the owner's query socket.
        with runstream_server(tmp_path) as second:
            assert _get(f"{second}api/ui/curves?run={quote(run.id)}&name=loss&width=500")["points"] == [250]


def test_server_reads_a_clickhouse_server(clickhouse_url: str, unique_name: str, tmp_path: Path) -> None:
    parts = urlsplit(clickhouse_url)
    url = urlunsplit(parts._replace(path="/" + unique_name))
    store = ClickHouseStore.from_url(url)
    try:
        store.migrate()
        fill(store)
    finally:
        store.close()
    try:
        with runstream_server(tmp_path, "--clickhouse", url) as base:
            experiments = _get(base + "api/ui/experiments")["experiments"]
            assert experiments["runs"][experiments["name"].index(EXP)] == 8
            curve = _get(base + "api/ui/curves?run=big&name=loss&width=400")
            assert curve["mode"] == "minmax" and max(v for v in curve["ys"][0] if v is not None) == 100.0
            assert len(curve["xs"]) <= 800 and curve["x_max"] > SPIKE_STEP
            page = urllib.request.urlopen(base, timeout=10).read().decode()
            assert "ui/assets/app.js" in page
    finally:
        admin = Client.from_url(urlunsplit(parts._replace(path="/default")))
        try:
            admin.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        finally:
            admin.disconnect()
