"""Per-run limits, shared by the SDK (checked at call time) and the ingest workers (authoritative).

Defaults are Azure ML's published limits for run metrics, tags and properties;
image and file sizes (not published by Azure ML) are runstream's choice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

__all__ = ["RunLimits"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunLimits:
    """Limits applied to every run. Build once (``RunLimits()``, ``from_mapping`` or ``from_file``) and pass down."""

    max_metric_names: int = 50
    max_rows_per_metric: int = 1_000_000
    max_columns_per_row: int = 15
    max_name_length: int = 255
    """Metric names and column names."""
    max_string_value_length: int = 255
    max_tags: int = 50
    max_properties: int = 50
    max_attribute_key_length: int = 100
    max_attribute_value_length: int = 1_000
    max_id_length: int = 256
    """Run ids, parent run ids, experiment names and display names."""
    max_error_details_length: int = 3_000
    max_image_bytes: int = 10 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    max_log_line_length: int = 16 * 1024
    """Longer captured lines are split into several log lines."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunLimits:
        """Limits from a mapping; unknown keys are an error (a typo must not silently keep a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    @classmethod
    def from_file(cls, path: str | Path) -> RunLimits:
        """Limits from a JSON file holding an object of overrides."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of limits")
        return cls.from_mapping(data)

    def to_dict(self) -> dict[str, int]:
        """The limits as a plain dict (for docs and `runstream` output)."""
        return asdict(self)
