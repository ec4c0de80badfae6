"""What a submitted job runs (:class:`ScriptRunConfig`, :class:`JobEnvironment`) and how it ended (:class:`JobResult`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError

from ..errors import InvalidValueType

__all__ = ["ENV_ERROR_FILE", "ENV_SUBMITTER_PID", "JobEnvironment", "JobResult", "ScriptRunConfig", "exit_code_of"]

ENV_ERROR_FILE = "RUNSTREAM_JOB_ERROR_FILE"
"""Where the job's bootstrap writes an uncaught exception's traceback (set by the submitter, private)."""
ENV_SUBMITTER_PID = "RUNSTREAM_JOB_SUBMITTER_PID"
"""The submitting process: if it is already gone when the job starts, the job does not run."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobEnvironment:
    """What a job runs with: extra environment variables and the interpreter.

    ``interpreter_path`` None = the submitting interpreter (``sys.executable``);
    another one must have runstream installed. Field names follow Azure ML's
    ``Environment`` (``environment_variables``, ``python.interpreter_path``).
    """

    environment_variables: Mapping[str, str] = field(default_factory=dict)
    interpreter_path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.environment_variables, Mapping):
            raise InvalidValueType("environment_variables must be a dict of str -> str")
        for key, value in self.environment_variables.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key or "\x00" in key + value:
                raise ConfigurationError(f"environment variable {key!r}={value!r}: names and values must be str, "
                                         "names non-empty without '='")
        object.__setattr__(self, "environment_variables", dict(self.environment_variables))
        if self.interpreter_path is not None and not isinstance(self.interpreter_path, str):
            raise InvalidValueType("interpreter_path must be a str")


@dataclass(frozen=True, slots=True)
class ScriptRunConfig:
    """A script to submit: ``ScriptRunConfig(source_directory, script, arguments=None, environment=None)``.

    ``script`` is relative to ``source_directory`` (or absolute); the job runs
    with ``source_directory`` as its working directory. ``arguments`` are
    passed as ``sys.argv[1:]`` (numbers and other values are turned into
    str). ``environment`` is a :class:`JobEnvironment`, or a dict of extra
    environment variables. Positional arguments are allowed, as in Azure ML.
    """

    source_directory: str | os.PathLike[str]
    script: str | os.PathLike[str]
    arguments: Sequence[Any] | None = None
    environment: JobEnvironment | Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source_directory, (str, os.PathLike)):
            raise InvalidValueType("source_directory must be a path")
        if not isinstance(self.script, (str, os.PathLike)) or not str(self.script):
            raise InvalidValueType("script must be a path")
        if self.arguments is not None:
            if isinstance(self.arguments, (str, bytes)) or not isinstance(self.arguments, Sequence):
                raise InvalidValueType("arguments must be a list (of str, numbers, ...)")
            object.__setattr__(self, "arguments", [str(a) for a in self.arguments])
        env = self.environment
        if env is not None and not isinstance(env, JobEnvironment):
            if not isinstance(env, Mapping):
                raise InvalidValueType("environment must be a JobEnvironment or a dict of environment variables")
            object.__setattr__(self, "environment", JobEnvironment(environment_variables=env))

    @property
    def job_environment(self) -> JobEnvironment:
        """The environment as a :class:`JobEnvironment` (an empty one when none was given)."""
        return self.environment if isinstance(self.environment, JobEnvironment) else JobEnvironment()

    def resolve(self) -> tuple[Path, Path]:
        """(working directory, script path), both absolute; ``ConfigurationError`` when missing."""
        directory = Path(self.source_directory).expanduser().absolute()
        if not directory.is_dir():
            raise ConfigurationError(f"source_directory {directory} is not a folder")
        script = Path(self.script).expanduser()
        script = script if script.is_absolute() else directory / script
        if not script.is_file():
            raise ConfigurationError(f"script {script} does not exist")
        return directory, script


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended, as the submitting process saw it."""

    status: str
    """Completed, Failed or Canceled."""
    exit_code: int | None
    """The script's exit code; negative = killed by that signal; None = it never started."""
    error_details: str | None
    """Failed: the traceback (or stderr's tail, or the exit); Canceled: why it was stopped; else None."""
    skipped_outputs: tuple[str, ...] = ()
    """Files of ./outputs not uploaded, each with the reason."""
    dropped_lines: int = 0
    """Output lines the emitter refused (``on_buffer_full="raise"`` with nothing draining)."""


def exit_code_of(result: JobResult) -> int:
    """A shell's exit code for ``result``: the script's own, 128+N for signal N, 130 when canceled by Ctrl-C."""
    code = result.exit_code
    if code is None:
        return 130 if result.status == "Canceled" else 1 if result.status == "Failed" else 0
    return 128 - code if code < 0 else code
