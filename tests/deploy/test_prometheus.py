"""deploy/prometheus/: promtool accepts the config and the rules, and the rules' unit tests pass.

promtool comes with Debian's ``prometheus`` package (``make stack-deps`` installs
it). These tests FAIL when it is missing: a rule file nobody checked must not
pass for a checked one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .promql import known_series, series_in

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts_test.yml"

# Every alert issue 7 asks for, by name: renaming one is an interface change (README, pagers).
REQUIRED_ALERTS = {
    "RunstreamIngestStalled",  # ingestion stalled while lag grows
    "RunstreamConsumerLagHigh",  # lag above a threshold for 10 minutes
    "RunstreamRejectionRatioHigh",  # rejection ratio high
    "RunstreamDeadLettersGrowing",  # DLQ growing
    "RunstreamClickHouseInsertErrors",  # ClickHouse insert errors
    "RunstreamExporterDown",  # exporter down
    "RunstreamWorkerDown",  # a worker down
    "RunstreamNoWorkers",  # every worker down
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not on PATH: install Debian's `prometheus` package (make stack-deps)", pytrace=False)
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_config() -> None:
    proc = promtool("check", "config", str(CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules() -> None:
    proc = promtool("test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_config_scrapes_workers_and_exporter_and_loads_the_rules() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"runstream-ingest", "runstream-exporter"}
    ingest = jobs["runstream-ingest"]["dns_sd_configs"][0]
    assert (ingest["names"], ingest["port"]) == (["ingest"], 9464)
    assert jobs["runstream-exporter"]["static_configs"][0]["targets"] == ["exporter:9465"]


def test_every_required_alert_exists_with_severity_and_instructions() -> None:
    by_name = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert REQUIRED_ALERTS <= set(by_name)
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        # The description says what to do, not only what happened.
        assert len(rule["annotations"]["description"].split()) >= 15, name


def test_rules_only_use_series_that_exist() -> None:
    known = known_series()
    for rule in rules():
        unknown = series_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert')}: unknown series {sorted(unknown)}"


def test_each_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules() if "alert" in rule}
    assert names - firing == set(), "never tested firing"
    assert names - quiet == set(), "never tested staying quiet"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (le) (rate(a_bucket{job="x"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum(rate(b[5m])) by (le)) > 1e3", {"b"}),
        ("x / ignoring(instance) group_left c offset 5m or vector(0)", {"x", "c"}),
        ('absent(up{job="runstream-ingest"} == 1)', {"up"}),
    ],
)
def test_series_in_reads_metric_names(expr: str, expected: set[str]) -> None:
    assert series_in(expr) == expected
