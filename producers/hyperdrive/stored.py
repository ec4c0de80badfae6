"""How a sweep is stored, for readers other than :class:`~producers.hyperdrive.run.HyperDriveRun` (the UI's sweep view).

The sweep's run has kind :data:`RUN_KIND` and the properties
``primary_metric_name``, ``primary_metric_goal``, ``sampling``, ``policy``, ...;
each trial's run has :data:`TRIAL_PROPERTIES`: its sampled values as one JSON
object (``hyperparameters``), its index and its whole argument list.
:func:`sweep_view` turns those back into what a table or chart of the trials
needs: the objective, and one column per sampled parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["RUN_KIND", "HYPERPARAMETERS", "TRIAL_PROPERTIES", "SweepView", "sweep_view"]

RUN_KIND = "hyperdrive"
"""The ``kind`` of a sweep's run."""

HYPERPARAMETERS = "hyperparameters"
"""A trial's property: its sampled values, one JSON object (Azure ML's shape)."""

TRIAL_PROPERTIES = (HYPERPARAMETERS, "hyperdrive_trial", "arguments")
"""The properties the sweep gives each trial (bookkeeping, not parameters to compare)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepView:
    """A sweep's objective and its trials' sampled values, as columns aligned with the trials."""

    primary_metric_name: str
    goal: str
    """``min`` or ``max``."""
    sampling: str
    policy: str
    """The policy as ``runstream sweep --policy`` writes it (``bandit(evaluation_interval=2, ...)``), or as stored."""
    params: dict[str, list[str | None]]
    """Parameter name (``--alpha``) -> its value per trial as text (None: not sampled for that trial)."""
    trial_properties: list[str]


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _policy_text(stored: str) -> str:
    try:
        spec = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return stored
    if spec["type"] == "none":
        return "none"
    args = ", ".join(f"{key}={_text(value)}" for key, value in spec.items() if key != "type" and value is not None)
    return f"{spec['type']}({args})"


def sweep_view(kind: str, properties: Mapping[str, str],
               trial_hyperparameters: Sequence[str | None]) -> SweepView | None:
    """The view of a sweep's run (``kind``, ``properties``) over its trials' ``hyperparameters`` properties;
    None when the run is not a sweep's. A trial whose property is missing or not a JSON object has no values."""
    if kind != RUN_KIND or "primary_metric_name" not in properties:
        return None
    rows: list[dict[str, object]] = []
    for raw in trial_hyperparameters:
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        rows.append(parsed if isinstance(parsed, dict) else {})
    names = list(dict.fromkeys(name for row in rows for name in row))
    params = {name: [_text(row[name]) if name in row else None for row in rows] for name in names}
    goal = "min" if properties.get("primary_metric_goal", "").upper() == "MINIMIZE" else "max"
    return SweepView(primary_metric_name=properties["primary_metric_name"], goal=goal,
                     sampling=properties.get("sampling", ""), policy=_policy_text(properties.get("policy", "")),
                     params=params, trial_properties=list(TRIAL_PROPERTIES))
