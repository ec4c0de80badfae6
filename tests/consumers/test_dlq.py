import json

import pytest

from consumers.dlq import DeadLetter, FolderDeadLetters
from consumers.errors import DeadLetterError
from consumers.message import RawMessage


def test_folder_dead_letters_keep_bytes_and_reason(tmp_path):
    dl = FolderDeadLetters(tmp_path / "deadletter", clock=lambda: 1.5)
    m = RawMessage("wa-00000001", 0, 42, b"run_1", b"\x00garbage")
    dl.send([DeadLetter(m, "bad_marker", "0047", -1)])
    dl.send([DeadLetter(m, "bad_marker", "0047", -1)])  # a re-delivery overwrites
    files = sorted(p.name for p in (tmp_path / "deadletter").iterdir())
    assert files == ["wa-00000001@42.json", "wa-00000001@42.msg"]
    assert (tmp_path / "deadletter" / "wa-00000001@42.msg").read_bytes() == b"\x00garbage"
    meta = json.loads((tmp_path / "deadletter" / "wa-00000001@42.json").read_text())
    assert meta["reason"] == "bad_marker" and meta["key"] == "run_1" and meta["source_offset"] == 42
    assert meta["dead_lettered_ms"] == 1500


def test_folder_errors_are_sink_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    dl = FolderDeadLetters(tmp_path / "file" / "sub")
    with pytest.raises(DeadLetterError):
        dl.send([DeadLetter(RawMessage("s", 0, 1, None, b""), "empty", "", -1)])
