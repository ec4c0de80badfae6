"""MLflow experiment ids for runstream's experiments, which have only names.

``"0"`` is the default experiment, named ``Default`` as in MLflow. Every
other id is the decimal string of the first 60 bits of the name's SHA-256: the
same on every server and after restarts, with no registry to keep in sync, a
valid MLflow experiment id, and numeric (some tools ``int()`` ids). So
``get-by-name`` of an experiment that runstream's SDK created returns the id
its runs report. Going back from an id needs the candidate names
(:class:`ExperimentIds` caches them).
"""

from __future__ import annotations

import threading
from typing import Iterable

from schemas.mlflow_ids import DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME
from schemas.mlflow_ids import mlflow_experiment_id as experiment_id

__all__ = ["DEFAULT_EXPERIMENT_NAME", "experiment_id", "ExperimentIds"]


class ExperimentIds:
    """id -> name for the names seen so far; ``learn`` them from the store's experiment list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {DEFAULT_EXPERIMENT_ID: DEFAULT_EXPERIMENT_NAME}

    def learn(self, names: Iterable[str]) -> None:
        """Remember these names' ids."""
        with self._lock:
            for name in names:
                self._names.setdefault(experiment_id(name), name)

    def name_of(self, exp_id: str) -> str | None:
        """The name behind ``exp_id``, if it was learnt."""
        with self._lock:
            return self._names.get(exp_id)

    def clash(self, name: str) -> str | None:
        """Another known name with the same id as ``name`` (a hash collision), if any."""
        with self._lock:
            other = self._names.get(experiment_id(name))
            return other if other is not None and other != name else None
