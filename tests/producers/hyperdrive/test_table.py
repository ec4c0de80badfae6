import math

from producers.hyperdrive.table import TrialRow, format_value, params_json, render_table


def test_table_has_a_row_per_trial_in_trial_order() -> None:
    rows = [TrialRow(1, "ridge_2", "Canceled", {"--alpha": 0.1}, 0.98, "BanditPolicy at interval 4: " + "x" * 200),
            TrialRow(0, "ridge_1", "Completed", {"--alpha": 0.0}, 0.41234567, ""),
            TrialRow(2, "ridge_3", "Queued", {"--alpha": 1.0}, None)]
    lines = render_table(rows, "mse", ["--alpha"]).splitlines()
    assert lines[0].split() == ["trial", "run", "status", "mse", "--alpha"]
    assert lines[1].split()[:5] == ["0", "ridge_1", "Completed", "0.412346", "0.0"]
    assert lines[2].split()[:5] == ["1", "ridge_2", "Canceled", "0.98", "0.1"]
    assert lines[2].endswith("…") and len(lines[2]) < 160
    assert lines[3].split() == ["2", "ridge_3", "Queued", "-", "1.0"]


def test_values_and_params() -> None:
    assert format_value(math.nan) == "nan" and format_value(None) == "-" and format_value(True) == "True"
    assert params_json({"--alpha": 0.1, "--opt": "adam"}) == '{"--alpha": 0.1, "--opt": "adam"}'
