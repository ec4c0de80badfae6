import math

import pytest

from runstream.server.mlflow_wire import (
    MlflowError,
    RequestFields,
    decode_page_token,
    dumps,
    encode_page_token,
    float_from_wire,
    float_to_wire,
)


def test_non_finite_floats_travel_as_strings_both_ways():
    assert [float_to_wire(v) for v in (1.5, math.nan, math.inf, -math.inf)] == [1.5, "NaN", "Infinity", "-Infinity"]
    assert math.isnan(float_from_wire("NaN", "value"))
    assert float_from_wire("Infinity", "value") == math.inf
    assert float_from_wire("-Infinity", "value") == -math.inf
    assert float_from_wire("2.5", "value") == 2.5
    assert float_from_wire(3, "value") == 3.0


@pytest.mark.parametrize("raw", ["abc", True, None, [1], "inf"])
def test_bad_floats_are_invalid_parameter_value(raw):
    with pytest.raises(MlflowError) as err:
        float_from_wire(raw, "value")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and err.value.http_status == 400
    assert "'value'" in err.value.message


def test_int64_fields_accept_numbers_and_strings():
    f = RequestFields({"a": 5, "b": "1099511627776", "c": "", "d": ["7"]})
    assert f.opt_integer("a") == 5
    assert f.integer("b") == 2**40
    assert f.opt_integer("c") is None and f.opt_integer("missing") is None
    assert f.integer("d") == 7
    with pytest.raises(MlflowError):
        RequestFields({"a": "x"}).integer("a")


def test_required_fields_name_themselves_and_take_an_alias():
    assert RequestFields({"run_uuid": "r1"}).text("run_id", alias="run_uuid") == "r1"
    with pytest.raises(MlflowError, match="Missing value for required parameter 'run_id'"):
        RequestFields({}).text("run_id")


def test_lists_and_objects():
    f = RequestFields({"ids": ["1", "2"], "one": "3", "objs": [{"key": "k"}]})
    assert f.texts("ids") == ["1", "2"] and f.texts("one") == ["3"] and f.texts("none") == []
    assert [o.text("key") for o in f.objects("objs")] == ["k"]
    with pytest.raises(MlflowError):
        RequestFields({"objs": [1]}).objects("objs")


def test_error_codes_map_to_mlflow_statuses():
    assert MlflowError.not_found("x").http_status == 404
    assert MlflowError("RESOURCE_ALREADY_EXISTS", "x").http_status == 400
    assert MlflowError("TEMPORARILY_UNAVAILABLE", "x").http_status == 503
    assert MlflowError("TEMPORARILY_UNAVAILABLE", "x").retriable
    assert not MlflowError.invalid("x").retriable
    assert MlflowError.invalid("bad").body() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}
    with pytest.raises(ValueError):
        MlflowError("NOT_A_CODE", "x")


def test_dumps_refuses_bare_nan():
    assert dumps({"a": [1, "NaN"]}) == b'{"a":[1,"NaN"]}'
    with pytest.raises(ValueError):
        dumps({"a": math.nan})


def test_page_tokens_round_trip_and_bad_ones_are_refused():
    assert decode_page_token(encode_page_token(25000)) == 25000
    assert decode_page_token(None) == 0 and decode_page_token("") == 0
    for bad in ("!!!", "bm90IGpzb24=", encode_page_token(0)[:-2] + "xx"):
        with pytest.raises(MlflowError):
            decode_page_token(bad)


def test_metric_columns_fast_path_and_conversions():
    from runstream.server.mlflow_backend import MetricPoint
    from runstream.server.mlflow_wire import metric_columns

    fast = metric_columns([{"key": "a", "value": 1.5, "timestamp": 1, "step": 2}, {"key": "b", "value": 0.5, "timestamp": 3}])
    assert (fast.keys, fast.values, fast.timestamps, fast.steps) == (["a", "b"], [1.5, 0.5], [1, 3], [2, 0])
    pts = metric_columns([{"key": "a", "value": 1.5, "timestamp": 1, "step": 2},
                          {"key": "a", "value": "NaN", "timestamp": "3"},
                          {"key": "b", "value": 2, "timestamp": 4, "step": "5"}]).points()
    assert pts[0] == MetricPoint("a", 1.5, 1, 2) and pts[2] == MetricPoint("b", 2.0, 4, 5)
    assert math.isnan(pts[1].value) and pts[1].step == 0 and pts[1].timestamp == 3
    assert len(metric_columns(None)) == 0 and len(metric_columns([])) == 0
    for bad, field in ([{"value": 1, "timestamp": 1}], "key"), ([{"key": "a", "timestamp": 1}], "value"), \
            ([{"key": "a", "value": 1}], "timestamp"), ([{"key": "a", "value": "x", "timestamp": 1}], "value"), \
            ([1], "metrics"), ("x", "metrics"), ([{"key": "", "value": 1.0, "timestamp": 1}], "key"), \
            ([{"key": "a", "value": 1.0, "timestamp": True}], "timestamp"), \
            ([{"key": "a", "value": 1.0, "timestamp": 1, "step": 1.5}], "step"), \
            ([{"key": "a", "value": 1.0, "timestamp": 1}, None], "metrics"):
        with pytest.raises(MlflowError, match=field):
            metric_columns(bad)
