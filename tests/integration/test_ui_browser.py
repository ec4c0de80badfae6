"""The web UI in a real headless Chromium (Debian's, driven by Selenium), over data logged with the SDK.

An embedded home gets a run logging every kind, a HyperDrive-like parent with
children (params as properties), written straight into chDB a run of
1,000,000 points with a single spike, and (once the server owns the home) a
real HyperDrive sweep of four trials. ``runstream server --home`` serves it on a
free port of 127.0.0.1 (owning the home, it ingests what the SDK spooled);
screenshots of each page land in ``ui/.screenshots/`` (git-ignored).
Every test ends with no console error and no request to anywhere but the server.
"""

from __future__ import annotations

import io
import json
import math
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from runstream.server.browser import Browser
from ui_data import runstream_server

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "ui" / ".screenshots"
BIG_POINTS = 1_000_000
SPIKE_STEP = 654_321
SWEEP = [(0.3, 2), (0.1, 3), (0.03, 4), (0.01, 5), (0.1, 6), (0.03, 2)]


def _accuracy(lr: float, depth: int, step: int, trial: int) -> float:
    ceiling = 0.95 - abs(math.log10(lr) + 1.5) * 0.1 - abs(depth - 4) * 0.02 + 0.0013 * trial  # no two tie
    return ceiling * (1 - math.exp(-step / 10))


def _png(shade: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([shade]) * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _log_with_the_sdk(home: Path) -> dict[str, Any]:
    import logging

    from producers import Experiment, Workspace
    from producers.log_handler import RunLogHandler
    from schemas.settings import WorkspaceSettings

    ids: dict[str, Any] = {"children": {}}
    # The embedded home only, whatever RUNSTREAM_* `make test` exports for the stack.
    with Workspace(settings=WorkspaceSettings.resolve({"home": str(home)}, env={})) as ws:
        with Experiment(ws, "ui-kinds").start_logging(display_name="every kind", tags={"team": "vision"},
                                                      properties={"optimizer": "adam"}) as run:
            ids["kinds"] = run.id
            handler = RunLogHandler(run)
            logger = logging.getLogger("ui-browser-test")
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            for step in range(300):
                run.log("loss", 1.0 / (step + 1))
            run.log("best_model", "resnet18")
            run.log_list("layer_norms", [0.9, 1.1, 1.3])
            for epoch in range(10):
                run.log_row("lr_schedule", epoch=epoch, lr=0.1 * 0.9 ** epoch)
            run.log_table("confusion", {"label": ["cat", "dog"], "correct": [97, 95], "total": [100, 100]})
            image = home / "sample.png"
            image.write_bytes(_png(90))
            run.log_image("samples", path=str(image))
            run.upload_file("outputs/model.txt", io.BytesIO(b"weights\n"))
            logger.info("training done")
            logger.removeHandler(handler)
        sweep = Experiment(ws, "ui-sweep")
        with sweep.start_logging(display_name="hyperdrive parent") as parent:
            ids["parent"] = parent.id
            for i, (lr, depth) in enumerate(SWEEP):
                child = parent.child_run(name=f"trial {i}")
                child.add_properties({"lr": f"{lr:g}", "depth": str(depth)})
                for step in range(40):
                    child.log("val_accuracy", _accuracy(lr, depth, step, i))
                child.complete()
                ids["children"][child.id] = _accuracy(lr, depth, 39, i)
    return ids


def _write_big_run(store: Any) -> None:
    from ui_data import Rows

    w = Rows(store)
    w.run("big-run", experiment="ui-big", name="one million points")
    w.names("big-run", {"loss": "scalar"}, experiment="ui-big")
    w.scalars("big-run", "loss", [100.0 if s == SPIKE_STEP else 1.0 + 0.1 * math.sin(s / 5000)
                                  for s in range(BIG_POINTS)], experiment="ui-big", chunk=250_000)


TRAIN = """
import argparse
from producers import Run
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--depth", type=int)
args = parser.parse_args()
run = Run.get_context()
for step in range(5):
    run.log("loss", args.lr * args.depth + 1.0 / (step + 1))
"""


def _hyperdrive_sweep(home: Path) -> str:
    from producers import (Experiment, GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, ScriptRunConfig,
                           Workspace, choice)
    from schemas.settings import WorkspaceSettings

    src = home.parent / "hyperdrive-src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    config = HyperDriveConfig(run_config=ScriptRunConfig(str(src), "train.py"),
                              hyperparameter_sampling=GridParameterSampling({"--lr": choice(0.1, 0.2),
                                                                             "--depth": choice(2, 3)}),
                              primary_metric_name="loss", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                              max_concurrent_runs=2)
    settings = WorkspaceSettings.resolve({"home": str(home), "install_signal_handlers": False}, env={})
    with Workspace(settings=settings) as ws:
        hd_run = Experiment(ws, "ui-hyperdrive").submit(config)
        assert hd_run.wait_for_completion()["status"] == "Completed"
        return str(hd_run.id)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from store import ChdbStore

    home = tmp_path_factory.mktemp("ui-home")
    ids = _log_with_the_sdk(home)
    store = ChdbStore(home / "chdb")  # before the server owns the home: the 1M-point run, written directly
    try:
        store.migrate()
        _write_big_run(store)
    finally:
        store.close()
    with runstream_server(home) as base:
        # The server ingests the spool the SDK wrote: wait until every child has its final status.
        deadline = time.monotonic() + 60
        while True:
            runs = _get(base + "api/ui/runs?experiment=ui-sweep")["runs"]
            if runs["status"].count("Completed") == len(SWEEP) + 1:
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        hyperdrive = _hyperdrive_sweep(home)  # the server owns the home: the sweep's reads go through it
        deadline = time.monotonic() + 60
        while _get(base + f"api/ui/runs?parent={quote(hyperdrive)}")["runs"]["status"].count("Completed") < 4:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield {"base": base, "hyperdrive": hyperdrive, **ids}


@pytest.fixture
def browser(site: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[Browser]:
    with Browser(width=1400, height=1000) as b:
        yield b
        SHOTS.mkdir(parents=True, exist_ok=True)
        b.screenshot(SHOTS / f"{request.node.name}.png")
        assert b.console_errors() == []
        assert b.requests_elsewhere(site["base"]) == []


def _drawn(b: Browser, title: str, count: int = 1) -> dict[str, Any]:
    found: dict[str, Any] = b.wait_for(
        "const d = ((window.__rs || {}).drawn || []).filter(e => e.title === arguments[0]);"
        "return d.length >= arguments[1] ? d[arguments[1] - 1] : null;", 30.0, title, count)
    return found


def test_start_page_lists_experiments(site: dict[str, Any], browser: Browser) -> None:
    browser.open(site["base"])
    names = browser.wait_for("const a = [...document.querySelectorAll('a.experiment-link')];"
                             "return a.length >= 3 ? a.map(e => e.textContent) : null;")
    assert {"ui-kinds", "ui-sweep", "ui-big"} <= set(names)


def test_run_page_draws_every_kind_and_the_image(site: dict[str, Any], browser: Browser) -> None:
    browser.open(f"{site['base']}#/run/{quote(site['kinds'])}")
    for title in ("loss", "layer_norms (list)", "lr_schedule: lr against epoch", "confusion: total against correct"):
        assert _drawn(browser, title)["points"] > 0
    assert browser.js("return document.querySelectorAll('.chart canvas').length") >= 4
    values = browser.js("return [...document.querySelectorAll('table.values td')].map(e => e.textContent)")
    assert values == ["best_model", "resnet18"]
    browser.wait_for("const i = document.querySelector('img.gallery-image'); return i && i.complete && i.naturalWidth;")
    browser.wait_for("return document.querySelector('table.files') && "
                     "document.querySelector('table.files').textContent.includes('outputs/model.txt');")
    browser.wait_for("return document.querySelector('pre.logs').textContent.includes('training done');")
    header = browser.js("return document.querySelector('.run-header').textContent")
    assert "Completed" in header and "every kind" in header


def test_two_runs_overlay_with_two_legend_entries(site: dict[str, Any], browser: Browser) -> None:
    two = list(site["children"])[:2]
    browser.open(f"{site['base']}#/compare?experiment=ui-sweep&metric=val_accuracy&runs={','.join(two)}")
    drawn = _drawn(browser, "val_accuracy")
    assert drawn["series"] == 2
    legend = browser.js("return [...document.querySelectorAll('.u-legend .u-series .u-label')].map(e => e.textContent)")
    assert legend[1:] == ["trial 0", "trial 1"]  # the first entry is the x axis


def test_a_single_spike_among_a_million_points_is_drawn(site: dict[str, Any], browser: Browser) -> None:
    browser.open(f"{site['base']}#/run/big-run")
    drawn = _drawn(browser, "loss")
    assert drawn["mode"] == "minmax" and drawn["max"] == 100.0
    width = browser.js("return window.__rs.charts[0].width()")
    assert drawn["points"] <= 2 * width
    assert browser.js("return window.__rs.charts[0].u.scales.y.max") >= 100.0


def test_zooming_asks_the_store_again(site: dict[str, Any], browser: Browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.open(f"{site['base']}#/run/big-run")
    _drawn(browser, "loss")
    first_bucket = browser.js("return window.__rs.charts[0].response.bucket")
    over = browser.driver.find_element(By.CSS_SELECTOR, ".u-over")
    size = over.size
    # Drag across the middle tenth of the plot: uPlot selects, the chart asks for that range.
    ActionChains(browser.driver).move_to_element_with_offset(over, int(size["width"] * 0.1), 0).click_and_hold() \
        .move_by_offset(int(size["width"] * 0.1), 0).release().perform()
    second = _drawn(browser, "loss", 2)
    assert second["loads"] == 2 and browser.js("return window.__rs.api.byPath.curves") == 2
    bucket, zoom_range = browser.js("const c = window.__rs.charts[0]; return [c.response.bucket, c.range];")
    assert zoom_range is not None and 0 < zoom_range[1] - zoom_range[0] < BIG_POINTS / 5
    assert bucket < first_bucket / 5  # a finer grid over the narrower range


def test_sweep_view_ranks_the_children(site: dict[str, Any], browser: Browser) -> None:
    browser.open(f"{site['base']}#/sweep/ui-sweep?parent={site['parent']}&metric=val_accuracy&goal=max")
    ranked = browser.wait_for("const s = (window.__rs || {}).sweep; if (!s) return null; const t = s.table();"
                              "return t.rows.length ? t.rows.map(i => t.runs.run_id[i]) : null;")
    expected = sorted(site["children"], key=lambda r: -site["children"][r])
    assert ranked == expected
    browser.js("document.querySelector('.goal-select').value = 'min';"
               "document.querySelector('.goal-select').dispatchEvent(new Event('change'));")
    worst_first = browser.js("const t = window.__rs.sweep.table(); return t.rows.map(i => t.runs.run_id[i]);")
    assert worst_first == expected[::-1]
    assert browser.js("return document.querySelectorAll('.echart canvas').length") >= 2


def test_sweep_view_of_a_hyperdrive_sweep_uses_its_objective_and_sampled_params(site: dict[str, Any],
                                                                               browser: Browser) -> None:
    browser.open(f"{site['base']}#/sweep/ui-hyperdrive?parent={quote(site['hyperdrive'])}")
    values = browser.wait_for("const s = (window.__rs || {}).sweep; if (!s) return null; const t = s.table();"
                              "return t.rows.length === 4 ? t.rows.map(i => t.values[i]) : null;")
    # Ranked by the best (lowest) loss: lr * depth + 1/5 at the last step.
    assert values == pytest.approx([0.4, 0.5, 0.6, 0.8])
    assert browser.js("return document.querySelector('.metric-select').value") == "loss"
    assert browser.js("return document.querySelector('.goal-select').value") == "min"
    axes = browser.js("return window.__rs.sweep.parallel.getOption().parallelAxis.map(a => a.name)")
    assert axes == ["--lr", "--depth", "loss"]   # the sampled values, not the trials' bookkeeping properties
    assert "HyperDrive: grid sampling" in browser.js("return document.querySelector('.sweep-info').textContent")
