"""Uploading a finished job's ``./outputs`` folder to its run, as ``outputs/...``.

What cannot go — a file over ``max_file_bytes``, an unreadable file, a name
that is not a valid artifact path — is skipped, not fatal: the skips are
logged, kept in the run's own log, and returned to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.limits import RunLimits
from schemas.records import LogLine

from ..errors import SdkError
from ..files import check_artifact_path, folder_files

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["upload_outputs"]

_log = logging.getLogger("runstream.submit")

_MAX_SKIP_WARNINGS = 20


def upload_outputs(run: Run, folder: Path, limits: RunLimits, clock: Callable[[], float]) -> list[str]:
    """Upload ./outputs as outputs/...; what cannot go is skipped, warned about and kept in the run's log."""
    if not folder.is_dir():
        return []
    limit = limits.max_file_bytes
    skipped: list[str] = []
    try:
        files = folder_files(folder)
    except (OSError, SdkError) as exc:
        files = []
        skipped.append(f"outputs: {exc}")
    for relative, full in files:
        name = f"outputs/{relative}"
        try:
            check_artifact_path(name)
            size = full.stat().st_size
            if size > limit:
                skipped.append(f"{name}: {size} bytes, over the {limit}-byte file limit (max_file_bytes)")
                continue
            run.upload_file(name, full)
        except (OSError, SdkError) as exc:
            skipped.append(f"{name}: {exc}")
    if skipped:
        shown = skipped[:_MAX_SKIP_WARNINGS]
        more = len(skipped) - len(shown)
        text = (f"runstream: {len(skipped)} file(s) of ./outputs were not uploaded to run {run.id}:\n  "
                + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))
        _log.warning("%s", text)
        try:
            run.log_lines([LogLine(int(clock() * 1000), "logging", "runstream.submit", logging.WARNING,
                                   text[:limits.max_log_line_length])])
        except SdkError:
            pass
    return skipped
