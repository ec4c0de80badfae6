"""Parsing chDB's JSONCompactEachRowWithNamesAndTypes output by the types in its header."""

import json
import math

from store._results import parse_rows, split_type_args


def result(types, *rows, raw=None):
    lines = [json.dumps([f"c{i}" for i in range(len(types))]), json.dumps(types)]
    lines += [json.dumps(r) for r in rows]
    text = "\n".join(lines) + "\n"
    return text.encode() if raw is None else text.encode().replace(b"RAW", raw)


def test_empty_outputs():
    assert parse_rows(b"") == []
    assert parse_rows(result(["UInt8"])) == []


def test_numbers_by_type():
    rows = parse_rows(result(
        ["Float64", "Float64", "Float32", "UInt64", "Int64", "Nullable(Float64)", "LowCardinality(String)", "Bool"],
        ["nan", "-inf", 1, 18446744073709551615, "-9223372036854775808", None, "q", True]))
    (nan, ninf, one, big, small, none, q, flag), = rows
    assert math.isnan(nan) and ninf == -math.inf and one == 1.0 and isinstance(one, float)
    assert big == 2**64 - 1 and small == -(2**63) and none is None and q == "q" and flag is True


def test_arrays_and_tuples():
    rows = parse_rows(result(["Array(Float64)", "Array(String)", "Tuple(UInt8, Array(Float64))",
                              "Tuple(a String, b Float64)"],
                             [["nan", 2], ["x"], [1, ["inf"]], ["s", "1.5"]]))
    arr, strs, tup, named = rows[0]
    assert math.isnan(arr[0]) and arr[1] == 2.0
    assert strs == ["x"] and tup == (1, [math.inf]) and named == ("s", 1.5)


def test_invalid_utf8_strings_become_bytes():
    rows = parse_rows(result(["String", "String", "Array(String)"], ["RAW", "ok é", ["RAW"]], raw=b"\xff\xfeA"))
    assert rows == [(b"\xff\xfeA", "ok é", [b"\xff\xfeA"])]


def test_strings_with_newlines_stay_in_their_row():
    rows = parse_rows(result(["String", "UInt8"], ["a\nb", 1], ["", 2]))
    assert rows == [("a\nb", 1), ("", 2)]


def test_split_type_args():
    assert split_type_args("UInt8, Array(Tuple(String, Int64)), DateTime64(3, 'UTC, x')") == [
        "UInt8", "Array(Tuple(String, Int64))", "DateTime64(3, 'UTC, x')"]


def test_negative_zero_keeps_its_sign():
    ((z, zs, i),) = parse_rows(b'["a","b","c"]\n["Float64","Array(Float64)","Int64"]\n[-0,[-0,1],0]\n')
    assert math.copysign(1.0, z) == -1.0 and math.copysign(1.0, zs[0]) == -1.0 and zs[1] == 1.0
    assert i == 0 and isinstance(i, int)
