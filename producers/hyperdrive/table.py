"""The text table ``hd_run.wait_for_completion(show_output=True)`` shows: one row per trial.

    trial  run                         status     mse      --alpha
    0      ridge_1795869087_05a1f1bb   Completed  0.412    0.0
    1      ridge_1795869087_9c0e77d1   Canceled   0.98     0.1      BanditPolicy at interval 4: ...
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .parameters import ParameterValue

__all__ = ["TrialRow", "render_table", "format_value", "params_json"]

_MAX_CELL = 40
_MAX_NOTE = 80


@dataclass(frozen=True, slots=True)
class TrialRow:
    """What the table shows of one trial."""

    index: int
    run_id: str
    status: str
    params: Mapping[str, ParameterValue]
    latest: float | None
    """The latest value of the primary metric the store has (None: none yet)."""
    note: str = ""
    """Why it was stopped, or how it failed (shortened)."""


def format_value(value: ParameterValue | float | None) -> str:
    """A compact metric cell: floats with 6 significant digits, '-' for nothing (parameters show as the script got
    them)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def params_json(params: Mapping[str, ParameterValue]) -> str:
    """The sampled values as the JSON object stored on a trial (``hyperparameters`` property)."""
    return json.dumps(dict(params), separators=(", ", ": "), allow_nan=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(rows: Sequence[TrialRow], metric: str, parameter_names: Sequence[str]) -> str:
    """The table as text (no trailing newline): a header, then the rows in trial order."""
    header = ["trial", "run", "status", metric, *parameter_names, ""]
    body = [[str(r.index), r.run_id, r.status, format_value(r.latest),
             *(str(r.params.get(name, "-")) for name in parameter_names), _cut(r.note, _MAX_NOTE)]
            for r in sorted(rows, key=lambda r: r.index)]
    cells = [[_cut(cell, _MAX_CELL) if i < len(header) - 1 else cell for i, cell in enumerate(row)]
             for row in [header, *body]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
