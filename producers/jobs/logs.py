"""Reading a run's captured output back: following it as it grows, and printing it.

The reader (``store.RunReader.get_logs``) returns every line of a
run in order (time, then writer, seq, index). A line can arrive late and land
before lines already printed (the job's own logging records travel from
another process than its captured stdout), so :class:`LogFollower` does not
count lines: it remembers how many times it printed each distinct line and
prints, in order, the ones not yet printed.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable, Protocol

from schemas.records import LogLine

__all__ = ["LogFollower", "format_line", "OUTPUT_STREAMS", "ALL_STREAMS"]

OUTPUT_STREAMS = ("stdout", "stderr")
"""The job's console, as its terminal would have shown it."""
ALL_STREAMS = ("stdout", "stderr", "logging")


class _LogReader(Protocol):
    def get_logs(self, run_id: str) -> list[LogLine]: ...


class LogFollower:
    """Hands out each line of a run once, in order, across repeated reads."""

    def __init__(self, reader: _LogReader | Any, run_id: str, *, streams: Iterable[str] = OUTPUT_STREAMS) -> None:
        self._reader = reader
        self._run_id = run_id
        self._streams = frozenset(streams)
        self._seen: Counter[LogLine] = Counter()
        self.skipped_streams: Counter[str] = Counter()
        """Lines of other streams than the ones asked for, by stream (for a hint)."""

    def new_lines(self) -> list[LogLine]:
        """Lines not handed out before (reads the run's whole log once)."""
        lines = self._reader.get_logs(self._run_id)
        budget = Counter(self._seen)
        out: list[LogLine] = []
        skipped: Counter[str] = Counter()
        for line in lines:
            if line.stream not in self._streams:
                skipped[line.stream] += 1
                continue
            if budget[line] > 0:
                budget[line] -= 1
                continue
            out.append(line)
            self._seen[line] += 1
        self.skipped_streams = skipped
        return out


def format_line(line: LogLine, *, timestamps: bool = False) -> str:
    """One line as ``runstream logs`` prints it: output lines as they were, logging records with level and logger."""
    if line.stream == "logging":
        text = f"{logging.getLevelName(line.level)} {line.logger or 'root'}: {line.message}"
        if line.exc_text:
            text += "\n" + line.exc_text
    else:
        text = line.message
    if timestamps:
        stamp = datetime.fromtimestamp(line.time_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
        text = f"{stamp.replace('+00:00', 'Z')} {text}"
    return text
