"""What a job's process is started with: its command line and its environment.

The job runs ``python -m producers.job_bootstrap SCRIPT ARGS``. Its
environment carries the run (``RUNSTREAM_RUN_ID``, ``RUNSTREAM_EXPERIMENT``,
``RUNSTREAM_PARENT_RUN_ID``) and the submitter's workspace settings: a private
``runstream.json`` (mode 0600, in the job's temporary folder) that
``RUNSTREAM_CONFIG`` points to, plus the ``RUNSTREAM_*`` variables, which win
over any config file and so must say the same.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError
from schemas.mlflow_ids import mlflow_experiment_id
from schemas.secrets import Secret
from schemas.settings import ENV, ENV_CONFIG, WorkspaceSettings

from .config import ENV_ERROR_FILE, ENV_SUBMITTER_PID, ScriptRunConfig

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["ENV_EXPERIMENT", "ENV_PARENT_RUN_ID", "ENV_RUN_ID", "job_command", "job_environment", "write_settings"]

ENV_RUN_ID = "RUNSTREAM_RUN_ID"
"""Set for a submitted script: ``Run.get_context()`` attaches to this run."""
ENV_EXPERIMENT = "RUNSTREAM_EXPERIMENT"
"""The submitted run's experiment (required with ``RUNSTREAM_RUN_ID``)."""
ENV_PARENT_RUN_ID = "RUNSTREAM_PARENT_RUN_ID"
"""The submitted run's parent, if any."""


def job_command(config: ScriptRunConfig, script: Path) -> list[str]:
    """The job's command line: the bootstrap module, then the script and its arguments."""
    python = config.job_environment.interpreter_path or sys.executable
    return [python, "-m", "producers.job_bootstrap", str(script), *(config.arguments or [])]


def job_environment(run: Run, config: ScriptRunConfig, private_dir: Path) -> dict[str, str]:
    """The job's environment: ours, the config's extra variables, the run and the workspace settings."""
    settings = run.experiment.workspace.settings
    env = dict(os.environ)
    env.update(config.job_environment.environment_variables)
    env.setdefault("PYTHONUNBUFFERED", "1")
    settings_file = private_dir / "runstream.json"
    write_settings(settings, settings_file)
    env.update({
        ENV_CONFIG: str(settings_file),
        ENV["kafka"]: settings.kafka or "",
        ENV["clickhouse"]: settings.clickhouse or "",
        ENV["home"]: str(settings.home),
        ENV["topic"]: settings.topic,
        ENV["server"]: settings.server,
        ENV_RUN_ID: run.id,
        ENV_EXPERIMENT: run.experiment.name,
        ENV_PARENT_RUN_ID: run.parent.id if run.parent is not None else "",
        ENV_ERROR_FILE: str(private_dir / "error.txt"),
        ENV_SUBMITTER_PID: str(os.getpid()),
        # As Azure ML does: a plain `mlflow.start_run()` in the job logs into its run via `runstream server`.
        "MLFLOW_TRACKING_URI": settings.server,
        "MLFLOW_RUN_ID": run.id,
        "MLFLOW_EXPERIMENT_ID": mlflow_experiment_id(run.experiment.name),
    })
    return env


def write_settings(settings: WorkspaceSettings, path: Path) -> None:
    """The workspace settings as a ``runstream.json`` the job's ``Workspace.default()`` reads (mode 0600,
    in the run's private folder: it may hold the passwords the job needs)."""
    data: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "limits":
            value = value.to_dict()
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, Secret):
            value = value.reveal()
        elif isinstance(value, Mapping):
            value = {k: v.reveal() if isinstance(v, Secret) else v for k, v in value.items()}
        data[f.name] = value
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the workspace settings cannot be passed to a job (kafka_options must be "
                                 f"JSON values): {exc}") from exc
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
