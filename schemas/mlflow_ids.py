"""MLflow experiment ids for runstream experiments, which have only names (shared by the SDK and the server).

``"0"`` is the default experiment, named ``Default`` as in MLflow. Every
other id is the decimal string of the first 60 bits of the name's SHA-256:
the same in every process and after restarts, with no registry to keep in
sync, a valid MLflow experiment id, and numeric (some tools ``int()`` ids).
So ``get-by-name`` of an experiment the SDK created returns the id its runs
report, and a submitted job gets its ``MLFLOW_EXPERIMENT_ID`` without asking
anyone.
"""

from __future__ import annotations

import hashlib

__all__ = ["DEFAULT_EXPERIMENT_ID", "DEFAULT_EXPERIMENT_NAME", "mlflow_experiment_id"]

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


def mlflow_experiment_id(name: str) -> str:
    """The MLflow id of the experiment called ``name``."""
    if name == DEFAULT_EXPERIMENT_NAME:
        return DEFAULT_EXPERIMENT_ID
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return str(int.from_bytes(digest[:8], "big") >> 4)
