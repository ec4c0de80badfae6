"""Shapes of producers.reading that need no database (the queries are covered in tests/integration)."""

import math

import pytest

from producers.reading import ReadSettings, RunReader


def test_tables_shapes():
    rows = [
        ("accs", "list", 1, "w", 3, 0, ["accs"], [0.5], [""], [0]),
        ("accs", "list", 1, "w", 3, 1, ["accs"], [None], ["n/a"], [1]),
        ("xy", "row", 1, "w", 4, 0, ["x", "y"], [1.0, 2.0], ["", ""], [0, 0]),
        ("xy", "row", 2, "w", 5, 0, ["x", "z"], [3.0, None], ["", ""], [0, 0]),
        ("l2", "list", 1, "w", 6, 0, ["l2"], [1.0], [""], [0]),
        ("l2", "list", 2, "w", 7, 0, ["l2"], [2.0], [""], [0]),
    ]
    out = RunReader._tables(rows)
    assert out["accs"] == [0.5, "n/a"]
    assert out["xy"]["x"] == [1.0, 3.0] and out["xy"]["y"] == [2.0, None] and out["xy"]["z"][0] is None
    assert math.isnan(out["xy"]["z"][1])  # a NaN cell (null from JSON) stays NaN
    assert out["l2"] == [[1.0], [2.0]]  # two log_list calls


def test_settings_from_a_workspace_like_object(tmp_path):
    class Ws:
        home = tmp_path
        kafka = "k:1"
        clickhouse = None

    s = ReadSettings.from_workspace(Ws(), visible_timeout_s=3)
    assert s.home == tmp_path and s.kafka == "k:1" and s.visible_timeout_s == 3
    assert ReadSettings.from_workspace(s) is s
    with pytest.raises(ValueError):
        ReadSettings(home=tmp_path, visible_timeout_s=0)
