"""Experiments: named groups of runs, as in Azure ML (``Experiment(workspace, name)``)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .errors import InvalidLogCall, InvalidValueType
from .workspace import Workspace

if TYPE_CHECKING:
    from .run import Run
    from .submit import ScriptRunConfig

__all__ = ["Experiment", "check_experiment_name"]

_log = logging.getLogger("runstream.experiment")

# Azure ML's rule: letters, digits, '_' and '-', starting with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_experiment_name(name: Any, limit: int) -> str:
    """An experiment name: 1-``limit`` characters of ``[A-Za-z0-9_-]``, starting with a letter or digit."""
    if not isinstance(name, str):
        raise InvalidValueType(f"experiment name must be a str, got {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise InvalidLogCall(
            f"experiment name {name!r} must be letters, digits, '_' or '-', starting with a letter or digit"
        )
    if len(name) > limit:
        raise InvalidLogCall(f"experiment name is {len(name)} characters; the limit is {limit}")
    return name


class Experiment:
    """A named group of runs in a workspace."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        if not isinstance(workspace, Workspace):
            raise InvalidValueType(f"workspace must be a Workspace, got {type(workspace).__name__}")
        self.workspace = workspace
        self.name = check_experiment_name(name, workspace.settings.limits.max_id_length)

    def start_logging(
        self,
        display_name: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str] | None = None,
        *,
        snapshot_directory: str | None = None,
        outputs: str | None = None,
    ) -> Run:
        """Start an interactive run; use it as a context manager or call ``complete()``.

        ``snapshot_directory`` and ``outputs`` are accepted for Azure ML
        compatibility and ignored (runstream takes no code snapshots).
        """
        from .run import Run

        if snapshot_directory is not None or outputs is not None:
            _log.debug("start_logging: snapshot_directory/outputs are ignored by runstream")
        return Run._start(self, display_name=display_name, tags=tags, properties=properties, kind="interactive")

    def submit(self, config: ScriptRunConfig, tags: Mapping[str, str | None] | None = None,
               **_azure_kwargs: Any) -> Run:
        """Run ``config``'s script as a new run of this experiment, in a child process; returns at once.

        The script runs in ``config.source_directory`` with the run as its
        ``Run.get_context()``; its stdout, stderr and ``logging`` records are
        kept as the run's log; ``./outputs`` is uploaded when it ends; its exit
        decides the status. ``run.wait_for_completion()`` waits for it. See
        :mod:`producers.submit`.
        """
        from .submit import submit

        if _azure_kwargs:
            _log.debug("submit: ignoring %s", ", ".join(sorted(_azure_kwargs)))
        return submit(self, config, tags)

    def get_runs(self) -> Iterator[Run]:
        """The experiment's runs, newest first, as :class:`Run` handles (read through ``producers.reading``)."""
        from .run import Run

        self.workspace.flush(self.workspace.settings.flush_timeout_s)
        for info in self.workspace.reader().get_runs(self.name):
            yield Run._from_info(self, info)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.workspace is self.workspace and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self.workspace), self.name))

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace!r})"
