"""``runstream spool status`` / ``runstream spool replay``: spools left behind by processes that died.

A training process in Kafka mode writes to ``$RUNSTREAM_HOME/outbox`` while the
broker is unreachable and replays it itself when the broker returns. If it
dies first, its segments stay there; :func:`replay` sends them to Kafka, in
order, and removes each segment once every message in it is acknowledged.

Segments of a writer that is still running (it holds a lock on its ``.open``
segment) are left alone: that process replays them itself. A replay that is
interrupted resumes from a ``<segment>.replayed`` offset file, so at most one
chunk is sent twice (the store collapses it by ``(writer_id, seq)``).

``runstream spool`` (:mod:`runstream.spool_cmd`) calls these functions; they
print nothing themselves. Sending goes through :mod:`producers.outbox`, the
same replay a running process uses.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from schemas.settings import DEFAULT_TOPIC
from schemas.spool import SpoolCorruption, SpoolRecord, list_segments, read_segment, seal_abandoned, segment_is_live

from .errors import TransportError
from .kafka_transport import KafkaTransport
from .outbox import keep_rejected, replay_segment

__all__ = [
    "SegmentInfo",
    "SpoolDirStatus",
    "SpoolStatus",
    "ReplayProgress",
    "ReplayResult",
    "spool_status",
    "replay",
    "format_status",
]

_log = logging.getLogger("runstream.spool")


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment file."""

    path: Path
    writer_id: str
    size: int
    records: int
    live: bool
    """An ``.open`` segment locked by a running writer."""
    corrupt: str | None
    """Why the tail is unreadable (``bad_crc``, ``truncated``...), or None."""
    replayed_offset: int
    """Bytes already replayed by an interrupted ``replay`` (0 if none)."""


@dataclass(frozen=True, slots=True)
class SpoolDirStatus:
    """Every segment of one spool directory."""

    directory: Path
    segments: tuple[SegmentInfo, ...]

    @property
    def records(self) -> int:
        """Messages in all segments."""
        return sum(s.records for s in self.segments)

    @property
    def size(self) -> int:
        """Bytes in all segments."""
        return sum(s.size for s in self.segments)

    @property
    def live_writers(self) -> frozenset[str]:
        """Writer ids with a live segment (running processes)."""
        return frozenset(s.writer_id for s in self.segments if s.live)

    @property
    def abandoned(self) -> tuple[SegmentInfo, ...]:
        """Segments whose writer is not running: what ``replay`` sends."""
        live = self.live_writers
        return tuple(s for s in self.segments if s.writer_id not in live)


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """The spools under one runstream home."""

    home: Path
    outbox: SpoolDirStatus
    """Kafka mode: messages the broker did not take yet (``replay`` sends the abandoned ones)."""
    spool: SpoolDirStatus
    """Embedded mode: the local event log ``runstream ingest`` reads (never replayed to Kafka)."""
    rejected: SpoolDirStatus
    """Messages the broker refused for good (too large, invalid), kept for inspection."""

    @property
    def pending_replay(self) -> int:
        """Messages ``replay`` would send now."""
        return sum(s.records for s in self.outbox.abandoned)


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """Reported to ``replay(progress=...)`` after every acknowledged chunk and at each segment's end."""

    segment: Path
    segment_records: int
    """Sent from this segment so far."""
    total_records: int
    """Sent in this replay so far."""
    done: bool
    """The segment is finished and removed (or, if ``corrupt``, renamed ``.corrupt``)."""
    corrupt: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one ``replay`` did."""

    segments: int = 0
    records: int = 0
    bytes: int = 0
    skipped_live: int = 0
    """Segments left alone because their writer is still running."""
    skipped_locked: int = 0
    """Segments another ``replay`` was working on."""
    corrupt: tuple[Path, ...] = ()
    """Segments with an unreadable tail, renamed ``.corrupt`` after their readable part was sent."""
    rejected: int = 0
    """Messages the broker refused for good, kept in ``outbox/rejected``."""


def _writer_of(path: Path) -> str:
    return path.stem.rsplit("-", 1)[0]


def _offset_file(path: Path) -> Path:
    return path.with_name(path.stem + ".replayed")


def _read_offset(path: Path) -> int:
    try:
        return int(_offset_file(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _dir_status(directory: Path) -> SpoolDirStatus:
    infos = []
    for path in list_segments(directory):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        records = 0
        corrupt = None
        try:
            for item in read_segment(path):
                if isinstance(item, SpoolCorruption):
                    corrupt = item.reason
                    break
                records += 1
        except FileNotFoundError:
            continue
        infos.append(
            SegmentInfo(path, _writer_of(path), size, records, segment_is_live(path), corrupt, _read_offset(path))
        )
    return SpoolDirStatus(directory, tuple(infos))


def spool_status(home: str | os.PathLike[str]) -> SpoolStatus:
    """Segments, messages and bytes in ``home``'s outbox, embedded spool and rejected folder (reads only)."""
    home = Path(home)
    return SpoolStatus(
        home=home,
        outbox=_dir_status(home / "outbox"),
        spool=_dir_status(home / "spool"),
        rejected=_dir_status(home / "outbox" / "rejected"),
    )


def format_status(status: SpoolStatus) -> str:
    """A few lines for a terminal."""
    lines = [f"runstream home: {status.home}"]
    for label, part in (("outbox", status.outbox), ("spool", status.spool), ("rejected", status.rejected)):
        live = len(part.live_writers)
        lines.append(
            f"  {label:<8} {part.directory}: {len(part.segments)} segment(s), {part.records} message(s), "
            f"{part.size} bytes; {live} live writer(s)"
        )
        for seg in part.segments:
            flags = [flag for flag, on in (("live", seg.live), (f"corrupt:{seg.corrupt}", seg.corrupt)) if on]
            lines.append(f"    {seg.path.name}  {seg.records} msg  {seg.size} B  {' '.join(flags)}".rstrip())
    lines.append(f"  to replay: {status.pending_replay} message(s)")
    return "\n".join(lines)


def replay(
    home: str | os.PathLike[str],
    bootstrap: str,
    topic: str = DEFAULT_TOPIC,
    *,
    progress: Callable[[ReplayProgress], None] | None = None,
    partitions: int = 8,
    kafka_options: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> ReplayResult:
    """Send the outbox segments of writers that are no longer running to Kafka, oldest first.

    ``bootstrap`` is ``host:port[,host:port]``; the topic is created with
    ``partitions`` if missing. Each segment is removed once all its messages
    are acknowledged. Raises :class:`TransportError` when Kafka cannot be
    reached (nothing is removed then).
    """
    outbox = Path(home) / "outbox"
    seal_abandoned(outbox)
    status = _dir_status(outbox)
    live = status.live_writers
    candidates = [s.path for s in status.segments if s.writer_id not in live and s.path.suffix == ".seg"]
    skipped_live = sum(1 for s in status.segments if s.writer_id in live)
    if not candidates:
        return ReplayResult(skipped_live=skipped_live)
    options: dict[str, Any] = {"bootstrap_servers": [b.strip() for b in bootstrap.split(",")]}
    options.update(kafka_options or {})
    kafka = KafkaTransport(options, topic, partitions=partitions, connect_timeout_s=min(timeout_s, 10.0),
                           client_id="runstream-spool-replay")
    totals = {"segments": 0, "records": 0, "bytes": 0, "locked": 0, "rejected": 0}
    corrupt: list[Path] = []
    try:
        for path in candidates:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    totals["locked"] += 1
                    continue
                if not path.exists() or os.fstat(handle.fileno()).st_ino != path.stat().st_ino:
                    continue  # another replay finished it while we waited
                reason = _replay_segment(kafka, topic, path, totals, progress, timeout_s)
                if reason is not None:
                    target = path.with_suffix(".corrupt")
                    os.rename(path, target)
                    corrupt.append(target)
                    _log.error("spool segment %s has an unreadable tail (%s); kept as %s", path, reason, target)
    finally:
        kafka.close(5.0)
    return ReplayResult(
        segments=totals["segments"],
        records=totals["records"],
        bytes=totals["bytes"],
        skipped_live=skipped_live,
        skipped_locked=totals["locked"],
        corrupt=tuple(corrupt),
        rejected=totals["rejected"],
    )


def _replay_segment(kafka: KafkaTransport, topic: str, path: Path, totals: dict[str, int],
                    progress: Callable[[ReplayProgress], None] | None, timeout_s: float) -> str | None:
    """Send one segment from its saved offset; remove it when done. Returns a corruption reason, if any."""

    def reject(record: SpoolRecord, exc: BaseException | None) -> None:
        keep_rejected(path.parent, _writer_of(path), record, exc)

    def on_chunk(end: int, sent: int) -> None:
        _offset_file(path).write_text(str(end))
        if progress is not None:
            progress(ReplayProgress(path, sent, totals["records"] + sent, False))

    result = replay_segment(kafka, topic, path, _read_offset(path), timeout_s=timeout_s, reject=reject,
                            on_chunk=on_chunk)
    if result is None:
        raise TransportError(f"Kafka did not acknowledge a chunk of {path.name} within {timeout_s:g}s")
    totals["records"] += result.sent
    totals["bytes"] += result.value_bytes
    totals["rejected"] += result.rejected
    totals["segments"] += 1
    corruption = result.corruption.reason if result.corruption is not None else None
    if corruption is None:
        path.unlink(missing_ok=True)
    _offset_file(path).unlink(missing_ok=True)
    if progress is not None:
        progress(ReplayProgress(path, result.sent, totals["records"], True, corruption))
    return corruption
