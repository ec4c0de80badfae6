"""Turning a job's stdout/stderr bytes into log lines, with bounded memory.

- :class:`LineSplitter` decodes a byte stream incrementally (UTF-8,
  ``errors="replace"``: binary junk becomes U+FFFD instead of an error, and a
  multi-byte character cut between two reads is decoded whole), splits it at
  ``\\n`` (one trailing ``\\r`` of a CRLF is dropped), and cuts a line longer
  than ``max_chars`` into pieces of ``max_chars``, so no partial line ever
  holds more than that.
- :class:`TextTail` keeps the last ``limit`` characters of a stream, for a
  failed job's error details.

Pure: no threads, no I/O; the job supervisor (:mod:`producers.jobs.process`) feeds them.
"""

from __future__ import annotations

import codecs
from collections import deque

__all__ = ["LineSplitter", "TextTail"]


class LineSplitter:
    """Bytes in, complete lines out; a pending partial line is at most ``max_chars`` long."""

    __slots__ = ("_decoder", "_partial", "_max")

    def __init__(self, max_chars: int) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be >= 1")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._max = max_chars

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data`` (without their line ends), in order."""
        text = self._partial + self._decoder.decode(data)
        parts = text.split("\n")
        self._partial = parts.pop()
        out: list[str] = []
        for line in parts:
            if line.endswith("\r"):
                line = line[:-1]
            self._cut_into(out, line)
        if len(self._partial) > self._max:
            # A line with no end in sight: ship the full pieces now, keep the rest.
            keep = len(self._partial) % self._max or self._max
            head, self._partial = self._partial[:-keep], self._partial[-keep:]
            self._cut_into(out, head)
        return out

    def finish(self) -> list[str]:
        """At end of stream: the unterminated last line, if any."""
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        out: list[str] = []
        if text:
            self._cut_into(out, text[:-1] if text.endswith("\r") else text)
        return out

    def _cut_into(self, out: list[str], line: str) -> None:
        limit = self._max
        if len(line) <= limit:
            out.append(line)
            return
        out.extend(line[i:i + limit] for i in range(0, len(line), limit))


class TextTail:
    """The last ``limit`` characters of the lines added, joined with newlines."""

    __slots__ = ("_lines", "_chars", "_limit", "_dropped")

    def __init__(self, limit: int) -> None:
        if limit < 4:
            raise ValueError("limit must be >= 4")
        self._lines: deque[str] = deque()
        self._chars = 0
        self._limit = limit
        self._dropped = False

    def add(self, line: str) -> None:
        """Append one line, forgetting the oldest ones beyond the limit."""
        self._lines.append(line)
        self._chars += len(line) + 1
        while self._chars > self._limit and len(self._lines) > 1:
            self._chars -= len(self._lines.popleft()) + 1
            self._dropped = True

    def text(self) -> str:
        """The tail; cut at the front (``...``) when older text was dropped."""
        text = "\n".join(self._lines)
        if self._dropped or len(text) > self._limit:
            text = "..." + text[-max(self._limit - 3, 1):]
        return text
