"""The committed bench/results/latest.json (when present) has every published key, as numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.results import KEYS

LATEST = Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json"


@pytest.mark.skipif(not LATEST.exists(), reason="no bench/results/latest.json yet (run make bench)")
def test_latest_json_has_every_key_as_a_finite_number() -> None:
    doc = json.loads(LATEST.read_text(encoding="utf-8"))
    missing = [k for k in KEYS if k not in doc]
    assert not missing, f"latest.json lacks {missing}"
    for key in KEYS:
        value = doc[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
        assert math.isfinite(value), (key, value)
        figure = doc["figures"][key]
        assert figure["min"] <= value <= figure["max"], key
    assert doc["machine"]["logical_cpus"] >= 1
