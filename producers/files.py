"""Files and images as events: path checks, PNG/JPEG detection, matplotlib figures, chunking.

A file travels as ``FileChunk`` events (``file_chunk_bytes`` each, 512 KiB
by default, so every Kafka message stays under 1 MiB) sharing one
``upload_id`` and the whole file's SHA-256. All chunks of one upload are
queued back to back; a later upload of the same path replaces the earlier one.

:func:`open_upload` runs on the caller's thread and does only what must
happen there (checks, opening the file, copying a stream the caller owns);
:meth:`Upload.measure` (size and hash: a pass over the whole file) runs on
the SDK's upload thread (:mod:`producers.uploads`).
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, Iterator

from .errors import InvalidLogCall, InvalidValueType

__all__ = [
    "MAX_PATH_LENGTH",
    "check_artifact_path",
    "image_bytes",
    "image_type",
    "Upload",
    "open_upload",
    "slug",
    "folder_files",
]

MAX_PATH_LENGTH = 1024
"""Longest artifact path (``outputs/...``) accepted."""

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """``name`` as one safe path component (for ``images/<name>/...``)."""
    cleaned = _SLUG.sub("_", name).strip("._") or "image"
    return cleaned[:100]


def check_artifact_path(name: Any) -> str:
    """A run-relative artifact path: '/'-separated, no empty/'.'/'..' parts, not absolute."""
    if not isinstance(name, str):
        raise InvalidValueType(f"file name must be a str, got {type(name).__name__}")
    normalized = name.replace("\\", "/")
    if not normalized or normalized.startswith("/"):
        raise InvalidLogCall(f"file name must be a relative path like 'outputs/model.pt', got {name!r}")
    parts = PurePosixPath(normalized).parts
    if any(part in ("", ".", "..") for part in normalized.split("/")) or not parts:
        raise InvalidLogCall(f"file name may not contain empty, '.' or '..' parts: {name!r}")
    if len(normalized) > MAX_PATH_LENGTH:
        raise InvalidLogCall(f"file name is {len(normalized)} characters; the limit is {MAX_PATH_LENGTH}")
    if "\x00" in normalized:
        raise InvalidLogCall("file name may not contain NUL")
    return normalized


def image_type(data: bytes) -> str | None:
    """``image/png`` or ``image/jpeg`` from the magic bytes, else None."""
    if data.startswith(_PNG):
        return "image/png"
    if data.startswith(_JPEG):
        return "image/jpeg"
    return None


def image_bytes(path: str | os.PathLike[str] | None, plot: Any, max_bytes: int) -> tuple[bytes, str]:
    """The image's bytes and content type, from a file or a matplotlib Figure / the ``pyplot`` module."""
    if (path is None) == (plot is None):
        raise InvalidLogCall("log_image takes exactly one of path= or plot=")
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidValueType(f"path must be a str or path, got {type(path).__name__}")
        try:
            size = os.stat(path).st_size
            if size > max_bytes:
                raise InvalidLogCall(f"image {path} is {size} bytes; the limit is {max_bytes}")
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidLogCall(f"cannot read image {path}: {exc}") from exc
        source = str(path)
    else:
        figure = _figure_of(plot)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = buffer.getvalue()
        source = "the plot"
    if len(data) > max_bytes:
        raise InvalidLogCall(f"image from {source} is {len(data)} bytes; the limit is {max_bytes}")
    content_type = image_type(data)
    if content_type is None:
        raise InvalidLogCall(f"{source} is not a PNG or JPEG image")
    return data, content_type


def _figure_of(plot: Any) -> Any:
    if hasattr(plot, "savefig") and not hasattr(plot, "gcf"):
        return plot  # a matplotlib Figure
    gcf = getattr(plot, "gcf", None)
    if callable(gcf):
        return gcf()  # the pyplot module, as Azure ML samples pass it
    raise InvalidValueType(f"plot must be a matplotlib Figure or matplotlib.pyplot, got {type(plot).__name__}")


@dataclass
class Upload:
    """An opened file to be chunked; ``size`` and ``sha256`` are known once :meth:`measure` ran."""

    path: str
    content_type: str
    upload_id: str
    source: BinaryIO
    chunk_bytes: int
    max_bytes: int
    label: str
    size: int = 0
    sha256: str = ""

    @property
    def chunk_count(self) -> int:
        """At least one chunk, so an empty file still exists."""
        return max(1, -(-self.size // self.chunk_bytes))

    def measure(self) -> None:
        """Read the whole source once for its size and SHA-256; InvalidLogCall past the file limit."""
        digest = hashlib.sha256()
        size = 0
        self.source.seek(0)
        while block := self.source.read(1024 * 1024):
            digest.update(block)
            size += len(block)
            if size > self.max_bytes:
                raise InvalidLogCall(f"{self.label} grew past the file limit of {self.max_bytes} bytes")
        self.size = size
        self.sha256 = digest.hexdigest()

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """``(index, data)`` for every chunk, read as they are needed (after :meth:`measure`)."""
        self.source.seek(0)
        for index in range(self.chunk_count):
            data = self.source.read(self.chunk_bytes)
            yield index, data

    def close(self) -> None:
        """Close the source (a file this module opened, or its copy of a stream)."""
        self.source.close()


def open_upload(name: str, source: Any, *, max_bytes: int, chunk_bytes: int) -> Upload:
    """Check ``name`` and ``source`` (a path or a binary/text stream) and open it; raises before anything is queued.

    A path is opened and its size checked, not read. A stream belongs to the
    caller, so it is copied here (memory first, disk past 8 MiB); it may not seek.
    """
    path = check_artifact_path(name)
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if isinstance(source, (str, os.PathLike)):
        try:
            f: BinaryIO = open(source, "rb")
        except OSError as exc:
            raise InvalidLogCall(f"cannot read {source}: {exc}") from exc
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            f.close()
            raise InvalidLogCall(f"{source} is {size} bytes; the file limit is {max_bytes}")
        return Upload(path, content_type, uuid.uuid4().hex, f, chunk_bytes, max_bytes, str(source))
    read = getattr(source, "read", None)
    if not callable(read):
        raise InvalidValueType(f"upload_file takes a path or a readable stream, got {type(source).__name__}")
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    size = 0
    try:
        while True:
            block = read(1024 * 1024)
            if not block:
                break
            if isinstance(block, str):
                block = block.encode("utf-8")
            size += len(block)
            if size > max_bytes:
                raise InvalidLogCall(f"stream is over the file limit of {max_bytes} bytes")
            spool.write(block)
    except BaseException:
        spool.close()
        raise
    return Upload(path, content_type, uuid.uuid4().hex, spool, chunk_bytes, max_bytes, "stream")  # type: ignore[arg-type]


def folder_files(root: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """Every regular file under ``root`` as ``(relative posix path, path)``, sorted."""
    base = Path(root)
    if not base.is_dir():
        raise InvalidLogCall(f"{root} is not a folder")
    out: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for file_name in sorted(files):
            full = Path(folder) / file_name
            if full.is_file():
                out.append((full.relative_to(base).as_posix(), full))
    return out
