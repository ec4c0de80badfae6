"""The spool: append-only segment files holding exactly the bytes sent to Kafka.

The spool is the embedded default's event log (no broker needed) and the
producer's outage buffer. Many processes write to one spool directory at
once without coordination: each writer appends only to its own segment
files, named ``<writer_id>-<segment:08d>.open`` while written and renamed to
``.seg`` once sealed. An ``.open`` segment is locked (``flock``) by its
writer, so a reader can tell a live one from one left by a crashed process.

Segment layout::

    b"RSSPOOL1"
    then records: u32 body length | u32 crc32(body) | body
    body = u16 key length | key | value

A reader stops at the first incomplete record of an ``.open`` segment (the
writer is mid-append) and resumes from the same offset later.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = [
    "SEGMENT_MAGIC",
    "SpoolRecord",
    "SpoolCorruption",
    "SpoolWriter",
    "read_segment",
    "list_segments",
    "seal_abandoned",
    "segment_is_live",
]

SEGMENT_MAGIC = b"RSSPOOL1"
_FRAME = struct.Struct(">II")
_KEY_LEN = struct.Struct(">H")
MAX_RECORD_BYTES = 64 * 1024 * 1024
_WRITER_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One framed message: its segment, where it starts and ends, key and value bytes."""

    segment: Path
    offset: int
    next_offset: int
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class SpoolCorruption:
    """Bytes from ``offset`` on could not be framed (bad CRC or length); the rest of the segment is unreadable."""

    segment: Path
    offset: int
    reason: str
    data: bytes


class SpoolWriter:
    """Appends framed messages to this writer's own segments in ``directory``.

    Not thread-safe: one emitter thread owns it. ``fsync`` is left to
    :meth:`sync` so callers choose their own durability point.
    """

    def __init__(self, directory: Path, writer_id: str, *, segment_bytes: int = 16 * 1024 * 1024) -> None:
        if not _WRITER_ID.fullmatch(writer_id):
            # "-" separates the writer id from the segment number in file names.
            raise ValueError(f"writer id must be 1-64 letters, digits or '_': {writer_id!r}")
        self.directory = Path(directory)
        self.writer_id = writer_id
        self.segment_bytes = segment_bytes
        self._number = 0
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def bytes_written(self) -> int:
        """Bytes in the currently open segment."""
        return self._size

    def append(self, key: bytes, value: bytes) -> None:
        """Append one message; rolls to a new segment when the current one is full."""
        if len(key) > 0xFFFF:
            raise ValueError("spool key longer than 65535 bytes")
        body = _KEY_LEN.pack(len(key)) + key + value
        if self._file is None or self._size + len(body) + _FRAME.size > self.segment_bytes and self._size > len(SEGMENT_MAGIC):
            self._roll()
        assert self._file is not None
        self._file.write(_FRAME.pack(len(body), zlib.crc32(body)) + body)
        self._file.flush()
        self._size += _FRAME.size + len(body)

    def sync(self) -> None:
        """Make what was appended durable (fsync)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def seal(self) -> None:
        """Close the open segment and rename it ``.seg`` so readers know it is complete."""
        if self._file is None or self._path is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        sealed = self._path.with_suffix(".seg")
        os.rename(self._path, sealed)
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
        self._path = None
        self._size = 0

    close = seal

    def _roll(self) -> None:
        self.seal()
        while True:
            self._number += 1
            path = self.directory / f"{self.writer_id}-{self._number:08d}.open"
            if not any(path.with_suffix(suffix).exists() for suffix in (".open", ".seg", ".new")):
                break
        # Locked before it is visible: an ingest looking at the folder between open() and flock()
        # would take an unlocked .open segment for an abandoned one and seal it under the writer.
        hidden = path.with_suffix(".new")
        f = open(hidden, "xb")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write(SEGMENT_MAGIC)
            f.flush()
            os.rename(hidden, path)
        except BaseException:
            f.close()
            hidden.unlink(missing_ok=True)
            raise
        self._file, self._path, self._size = f, path, len(SEGMENT_MAGIC)


def list_segments(directory: Path) -> list[Path]:
    """Every ``.seg`` and ``.open`` segment, ordered by writer then segment number."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".seg", ".open"))


def segment_is_live(path: Path) -> bool:
    """True when an ``.open`` segment is still locked by a running writer."""
    if path.suffix != ".open":
        return False
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def seal_abandoned(directory: Path) -> list[Path]:
    """Rename ``.open`` segments whose writer died to ``.seg``; returns the sealed paths."""
    sealed = []
    for path in list_segments(directory):
        if path.suffix == ".open" and not segment_is_live(path):
            target = path.with_suffix(".seg")
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue  # its writer sealed it a moment ago
            sealed.append(target)
    return sealed


_FIRST_READ = 64 * 1024
_MAX_READ = 4 * 1024 * 1024


class _Tail:
    """The bytes of a segment from some offset on, read in growing pieces as they are needed.

    The file is opened for each piece and closed at once: a reader may follow
    many segments (one per writer) without holding a descriptor for each, and
    a segment renamed from ``.open`` to ``.seg`` meanwhile is found under its
    new name.
    """

    __slots__ = ("path", "start", "buf", "_want", "eof")

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.start = start  # file offset of buf[0]
        self.buf = b""
        self._want = _FIRST_READ
        self.eof = False

    def have(self, end: int) -> bool:
        """Make ``buf`` reach file offset ``end`` if the file is that long now; True when it does."""
        while self.start + len(self.buf) < end:
            if self.eof:
                return False
            size = max(end - self.start - len(self.buf), self._want)
            piece = self._read(self.start + len(self.buf), size)
            self._want = min(self._want * 2, _MAX_READ)
            self.eof = len(piece) < size  # a short read: the end of the file, as it is now
            self.buf += piece
        return True

    def rest(self) -> bytes:
        """Everything from ``start`` to the end of the file."""
        while not self.eof:
            piece = self._read(self.start + len(self.buf), _MAX_READ)
            if not piece:
                break
            self.buf += piece
        self.eof = True
        return self.buf

    def drop_before(self, offset: int) -> None:
        """Forget the bytes before file offset ``offset`` (already parsed)."""
        if offset - self.start > len(self.buf) // 2:
            self.buf = self.buf[offset - self.start:]
            self.start = offset

    def _read(self, offset: int, size: int) -> bytes:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            sealed = self.path.with_suffix(".seg")
            if self.path.suffix != ".open" or not sealed.exists():
                raise
            self.path = sealed
            f = open(sealed, "rb")
        with f:
            f.seek(offset)
            return f.read(size)


def read_segment(path: Path, offset: int = 0) -> Iterator[SpoolRecord | SpoolCorruption]:
    """Yield records from ``offset`` on.

    Stops quietly at an incomplete tail (a live writer is mid-append, or a
    crash cut the last record). A bad CRC or an absurd length yields one
    :class:`SpoolCorruption` carrying the unreadable rest, then stops.

    Reads from ``offset`` on only, in pieces, as records are consumed: a
    reader following a growing segment reads each byte about once.
    """
    path = Path(path)
    sealed = path.suffix == ".seg"
    if offset == 0:
        head = _Tail(path, 0)
        if not head.have(len(SEGMENT_MAGIC)):
            return
        if head.buf[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
            yield SpoolCorruption(path, 0, "bad_segment_magic", head.rest())
            return
        offset = len(SEGMENT_MAGIC)
    tail = _Tail(path, offset)
    while tail.have(offset + _FRAME.size):
        buf, base = tail.buf, tail.start
        length, crc = _FRAME.unpack_from(buf, offset - base)
        start = offset + _FRAME.size
        if length < _KEY_LEN.size or length > MAX_RECORD_BYTES:
            yield SpoolCorruption(path, offset, "bad_length", tail.rest()[offset - base:])
            return
        if not tail.have(start + length):
            if sealed:
                yield SpoolCorruption(path, offset, "truncated", tail.rest()[offset - tail.start:])
            return
        buf, base = tail.buf, tail.start
        body = buf[start - base: start - base + length]
        if zlib.crc32(body) != crc:
            yield SpoolCorruption(path, offset, "bad_crc", tail.rest()[offset - base:])
            return
        (key_len,) = _KEY_LEN.unpack_from(body, 0)
        if _KEY_LEN.size + key_len > length:
            yield SpoolCorruption(path, offset, "bad_length", tail.rest()[offset - base:])
            return
        key = body[_KEY_LEN.size : _KEY_LEN.size + key_len]
        value = body[_KEY_LEN.size + key_len :]
        yield SpoolRecord(path, offset, start + length, key, value)
        offset = start + length
        tail.drop_before(offset)
    if sealed:
        rest = tail.rest()[offset - tail.start:]
        if rest:
            yield SpoolCorruption(path, offset, "truncated", rest)
