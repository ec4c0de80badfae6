"""deploy/grafana/: provisioning and dashboards agree with each other and with the code.

- every panel, query and variable uses a provisioned data source (uid and type);
- every PromQL expression selects only series a worker or the exporter exposes,
  and every such series is on the pipeline-health dashboard;
- ClickHouse SQL only reads runstream tables, and dashboard variables reach it
  only percent-encoded inside ``decodeURLComponent('...')``: Grafana's
  ``percentencode`` leaves letters, digits and ``-_.~%`` only, so a metric name
  like ``x' OR 1=1`` cannot end the string literal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .promql import known_series, series_in

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Tables of the logical schema (team brief; owner: the store engineer).
RUNSTREAM_TABLES = {
    "runs", "run_status", "run_attributes", "run_heartbeats", "metric_names", "metric_scalars", "metric_rows",
    "run_images", "run_files", "run_logs", "rejected_events", "schema_migrations", "writer_progress",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)|\[\[(\w+)(?::\w+)?\]\]")
_SAFE_VARIABLE = re.compile(r"decodeURLComponent\('\$\{(\w+):percentencode\}'\)")


def provisioned() -> dict[str, str]:
    """``uid -> type`` of the provisioned data sources."""
    sources: dict[str, str] = {}
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            sources[source["uid"]] = source["type"]
    return sources


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """``(where, datasource, text)`` of every panel target and variable query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel["datasource"]
            text = target.get("expr") or target.get("rawSql") or ""
            yield f"{dashboard['uid']}/{panel['title']}/{target['refId']}", source, text
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query if isinstance(query, str) else query.get("rawSql") or query.get("query", "")
            yield f"{dashboard['uid']}/${variable['name']}", variable["datasource"], text


def by_type(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in DASHBOARDS:
        dashboard = load(path)
        for where, source, text in queries(dashboard):
            if source["type"] == kind:
                yield where, text, dashboard


def test_both_dashboards_exist_with_unique_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert sorted(uids) == ["runstream-pipeline-health", "runstream-sweep-analytics"]


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    [provider] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # "source:target[:mode]" short syntax.
    mounts = {v.split(":")[0]: v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]}
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_data_sources_are_prometheus_and_clickhouse() -> None:
    assert provisioned() == {"prometheus": "prometheus", "clickhouse": "grafana-clickhouse-datasource"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_and_variable_uses_a_provisioned_data_source(path: Path) -> None:
    sources = provisioned()
    dashboard = load(path)
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        source = panel["datasource"]
        assert sources.get(source["uid"]) == source["type"], f"{panel['title']}: {source}"
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
    for where, source, _text in queries(dashboard):
        assert sources.get(source["uid"]) == source["type"], f"{where}: {source}"


def test_promql_only_uses_series_that_exist() -> None:
    known = known_series()
    for where, expr, _ in by_type("prometheus"):
        unknown = series_in(expr) - known
        assert not unknown, f"{where}: unknown series {sorted(unknown)} in {expr}"


def test_pipeline_health_shows_every_worker_and_exporter_series() -> None:
    used: set[str] = set()
    for _, expr, dashboard in by_type("prometheus"):
        if dashboard["uid"] == "runstream-pipeline-health":
            used |= series_in(expr)
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in known_series()}
    shown = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in used}
    missing = {f for f in families if f.startswith("runstream_")} - shown
    assert not missing, f"series on no panel: {sorted(missing)}"


def test_clickhouse_sql_reads_only_runstream_tables() -> None:
    seen = set()
    for where, sql, _ in by_type("grafana-clickhouse-datasource"):
        tables = set(re.findall(r"\bFROM\s+runstream\.(\w+)", sql, flags=re.IGNORECASE))
        assert tables, f"{where}: no runstream table"
        assert tables <= RUNSTREAM_TABLES, f"{where}: {tables - RUNSTREAM_TABLES}"
        seen |= tables
    assert {"runs", "metric_scalars", "metric_names"} <= seen


def test_variables_reach_sql_only_percent_encoded() -> None:
    for where, sql, dashboard in by_type("grafana-clickhouse-datasource"):
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        safe = _SAFE_VARIABLE.findall(sql)
        assert set(safe) <= defined, f"{where}: undefined variable(s) {set(safe) - defined}"
        rest = _SAFE_VARIABLE.sub("", sql)
        assert not _VARIABLE.search(rest), f"{where}: variable outside decodeURLComponent('${{x:percentencode}}')"


def test_sweep_leaderboard_ranks_by_the_chosen_metric() -> None:
    dashboard = load(GRAFANA / "dashboards" / "sweep-analytics.json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"experiment", "metric", "direction"} <= set(variables)
    assert {o["value"] for o in variables["direction"]["options"]} == {"asc", "desc"}
    titles = {panel["title"]: panel for panel in panels(dashboard)}
    assert {"Runs per experiment", "Points per minute", "Leaderboard"} <= set(titles)
    [leaderboard] = titles["Leaderboard"]["targets"]
    assert "name = decodeURLComponent('${metric:percentencode}')" in leaderboard["rawSql"]
    [points] = titles["Points per minute"]["targets"]
    assert points["queryType"] == "timeSeries"
