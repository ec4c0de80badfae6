import json

import pytest

from schemas import RunLimits


def test_defaults_are_azure_ml_published_limits():
    limits = RunLimits()
    assert (limits.max_metric_names, limits.max_rows_per_metric, limits.max_columns_per_row) == (50, 1_000_000, 15)
    assert (limits.max_name_length, limits.max_string_value_length) == (255, 255)
    assert (limits.max_tags, limits.max_properties, limits.max_attribute_key_length, limits.max_attribute_value_length) == (50, 50, 100, 1000)
    assert (limits.max_id_length, limits.max_error_details_length) == (256, 3000)


def test_overrides_from_file(tmp_path):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"max_metric_names": 200}))
    assert RunLimits.from_file(path).max_metric_names == 200


def test_unknown_keys_and_bad_values_are_rejected():
    with pytest.raises(ValueError, match="max_metric_name"):
        RunLimits.from_mapping({"max_metric_name": 3})
    with pytest.raises(ValueError):
        RunLimits(max_tags=0)
    with pytest.raises(ValueError):
        RunLimits(max_tags=True)
