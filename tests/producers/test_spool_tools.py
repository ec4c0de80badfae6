"""`runstream spool status` logic (replay runs against a real broker in tests/integration)."""

from __future__ import annotations

from pathlib import Path

from producers.spool_tools import format_status, spool_status
from schemas.spool import SpoolWriter


def _segment(directory: Path, writer: str, values: list[bytes], *, seal: bool = True) -> SpoolWriter:
    w = SpoolWriter(directory, writer)
    for v in values:
        w.append(b"run", v)
    if seal:
        w.seal()
    return w


def test_status_of_an_empty_home(tmp_path: Path) -> None:
    status = spool_status(tmp_path)
    assert status.pending_replay == 0 and status.outbox.segments == () and status.spool.records == 0
    assert "to replay: 0 message(s)" in format_status(status)


def test_status_counts_live_abandoned_and_corrupt_segments(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _segment(outbox, "deadwriter", [b"a", b"b", b"c"])
    live = _segment(outbox, "livewriter", [b"x"], seal=False)
    corrupt = outbox / "brokenwriter-00000001.seg"
    _segment(outbox, "brokenwriter", [b"ok"])
    with open(corrupt, "ab") as f:
        f.write(b"\x00\x00\x00\x09garbage")
    _segment(tmp_path / "spool", "embedded", [b"e1", b"e2"])
    status = spool_status(tmp_path)
    by_writer = {s.writer_id: s for s in status.outbox.segments}
    assert by_writer["deadwriter"].records == 3 and not by_writer["deadwriter"].live
    assert by_writer["livewriter"].live and by_writer["livewriter"].records == 1
    assert by_writer["brokenwriter"].corrupt == "truncated" and by_writer["brokenwriter"].records == 1
    assert status.outbox.live_writers == {"livewriter"}
    assert status.pending_replay == 4  # dead + broken, not the live writer's
    assert status.spool.records == 2 and status.rejected.records == 0
    text = format_status(status)
    assert "live" in text and "corrupt:truncated" in text and "to replay: 4 message(s)" in text
    live.seal()
