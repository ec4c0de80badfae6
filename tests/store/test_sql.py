"""Our query dialect ({db}, {name:Type}) for the driver (18.16) and for chDB."""

import math

import pytest

from schemas.errors import ConfigurationError
from store.sql import bind_db, chdb_value, for_chdb, for_driver, placeholders

Q = ("SELECT x FROM {db}.metric_scalars WHERE run_id = {run:String} AND has({names:Array(String)}, name) "
     "AND step >= {step:Int64} AND seq % 2 = 0 AND name LIKE 'a%'")


def test_placeholders():
    assert placeholders(Q) == {"run": "String", "names": "Array(String)", "step": "Int64"}
    assert placeholders("{a:Tuple(String, Array(UInt8))} {a:Tuple(String, Array(UInt8))}") == {
        "a": "Tuple(String, Array(UInt8))"}
    with pytest.raises(ValueError):
        placeholders("{a:String} {a:Int64}")


def test_driver_rewrite_casts_non_strings_and_doubles_percent():
    sql, params = for_driver(Q, "rs", {"run": "r", "names": [], "step": 3, "unused": True})
    assert sql == ("SELECT x FROM `rs`.metric_scalars WHERE run_id = %(run)s AND has(CAST(%(names)s AS Array(String)), "
                   "name) AND step >= CAST(%(step)s AS Int64) AND seq %% 2 = 0 AND name LIKE 'a%%'")
    assert params == {"run": "r", "names": [], "step": 3, "unused": 1}


def test_driver_string_like_types_stay_bare():
    for typ in ("String", "LowCardinality(String)", "Nullable(String)", "FixedString(16)"):
        sql, _ = for_driver(f"SELECT {{v:{typ}}}", "rs", {"v": "x"})
        assert sql == "SELECT %(v)s"


def test_driver_params_normalise_and_reject():
    _, params = for_driver("SELECT {a:Array(UInt8)}, {b:Float64}", "rs", {"a": [True, False], "b": math.nan})
    assert params["a"] == [1, 0] and math.isnan(params["b"])
    with pytest.raises(TypeError):
        for_driver("SELECT {a:String}", "rs", {"a": b"bytes"})
    with pytest.raises(TypeError):
        for_driver("SELECT {a:String}", "rs", {"a": {"k": "v"}})


def test_missing_parameter_is_an_error():
    with pytest.raises(ValueError, match="missing"):
        for_driver(Q, "rs", {"run": "r"})
    with pytest.raises(ValueError, match="missing"):
        for_chdb(Q, "rs", None)


def test_database_is_validated_and_quoted():
    assert bind_db("SELECT 1 FROM {db}.t", "runstream") == "SELECT 1 FROM `runstream`.t"
    with pytest.raises(ConfigurationError):
        bind_db("{db}", "x`; DROP TABLE t; --")


HOSTILE = "q'\"\\ \t\n\r\x00\x7f '); DROP TABLE x; -- 😀 \\N"


def test_chdb_top_level_string_is_escaped_text():
    assert chdb_value("a\\b\tc\nd'e\x00") == "a\\\\b\\x09c\\x0ad'e\\x00"
    assert "\n" not in chdb_value(HOSTILE) and "\x00" not in chdb_value(HOSTILE)


def test_chdb_literals():
    assert chdb_value(5) == "5"
    assert chdb_value(-(2**63)) == "-9223372036854775808"
    assert chdb_value(True) == "1"
    assert chdb_value(1.5) == "1.5"
    assert chdb_value(math.nan) == "nan"
    assert chdb_value(-math.inf) == "-inf"
    assert chdb_value(None) == "\\N"
    assert chdb_value(["a'b", "c\\", ""]) == "['a\\'b','c\\\\','']"
    assert chdb_value([]) == "[]"
    assert chdb_value([1, None, [2.5]]) == "[1,NULL,[2.5]]"
    assert chdb_value(("x", 1)) == "('x',1)"
    with pytest.raises(TypeError):
        chdb_value(b"x")


def test_for_chdb_formats_only_declared_names():
    sql, values = for_chdb(Q, "rs", {"run": HOSTILE, "names": ["a"], "step": 2, "extra": object()})
    assert sql.startswith("SELECT x FROM `rs`.metric_scalars WHERE run_id = {run:String}")
    assert "seq % 2" in sql  # no driver escaping here
    assert values == {"run": chdb_value(HOSTILE), "names": "['a']", "step": "2"}
