"""Helpers for checking PromQL written in deploy/ against the series runstream exports."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from consumers.exporter import SERIES as EXPORTER_SERIES
from consumers.metrics import IngestMetrics

__all__ = ["PROMETHEUS_SERIES", "known_series", "series_in"]

PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
"""Series Prometheus itself records for every target."""

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
     "inf", "nan", "Inf", "NaN"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_]\w*")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:.])(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|[smhdwy]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def series_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in _KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def known_series() -> frozenset[str]:
    """Every sample name a worker or the exporter exposes, plus Prometheus's own per-target series."""
    registry = CollectorRegistry()
    IngestMetrics(registry)
    worker = {sample.name for family in registry.collect() for sample in family.samples}
    # Label-less families only show samples once a child exists; derive the suffixes from the types.
    for family in registry.collect():
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "gauge": ("",), "summary": ("_count", "_sum", "_created")}[family.type]
        worker.update(family.name + suffix for suffix in suffixes)
    return frozenset(worker) | frozenset(EXPORTER_SERIES) | PROMETHEUS_SERIES
