"""SpoolSource on real segment files (KafkaSource is exercised in tests/integration)."""

import json
import os

from consumers.source import SpoolSource
from schemas.spool import SpoolWriter, list_segments


def drain(source, n=1000):
    out = []
    for _ in range(50):
        batch = source.poll(n, 0)
        if not batch:
            break
        out.extend(batch)
    return out


def test_reads_in_order_per_writer_and_checkpoints(tmp_path):
    spool, state = tmp_path / "spool", tmp_path / "state"
    w = SpoolWriter(spool, "wa", segment_bytes=200)
    for i in range(20):
        w.append(b"k", b"a%02d" % i)
    w.close()
    src = SpoolSource(spool, state, sleep=lambda s: None)
    got = drain(src, n=3)
    assert [m.value for m in got] == [b"a%02d" % i for i in range(20)]
    assert src.backlog_bytes() > 0
    src.commit()
    assert src.backlog_bytes() == 0
    assert list_segments(spool) == []  # sealed and fully ingested: deleted
    assert json.loads((state / "spool-checkpoint.json").read_text())["segments"] == {}


def test_uncommitted_messages_come_back_after_restart(tmp_path):
    spool, state = tmp_path / "spool", tmp_path / "state"
    w = SpoolWriter(spool, "wa")
    for i in range(5):
        w.append(b"k", b"v%d" % i)
    w.sync()
    src = SpoolSource(spool, state, sleep=lambda s: None)
    assert len(src.poll(2, 0)) == 2
    src.commit()
    assert [m.value for m in src.poll(10, 0)] == [b"v2", b"v3", b"v4"]
    # crash: no commit
    src2 = SpoolSource(spool, state, sleep=lambda s: None)
    assert [m.value for m in src2.poll(10, 0)] == [b"v2", b"v3", b"v4"]
    src2.rewind()
    assert [m.value for m in src2.poll(10, 0)] == [b"v2", b"v3", b"v4"]
    # the live writer appends more; the open segment is not deleted
    w.append(b"k", b"v5")
    assert [m.value for m in src2.poll(10, 0)] == [b"v5"]
    src2.commit()
    assert len(list_segments(spool)) == 1
    w.close()
    assert src2.poll(10, 0) == []
    src2.commit()
    assert list_segments(spool) == []


def test_abandoned_open_segment_is_sealed_and_read(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    w = SpoolWriter(spool, "dead")
    w.append(b"k", b"x")
    w._file.close()  # the process died: lock released, segment left .open
    src = SpoolSource(spool, tmp_path / "state", sleep=lambda s: None)
    assert [m.value for m in drain(src)] == [b"x"]
    src.commit()
    assert list_segments(spool) == []


def test_corruption_is_handed_out_as_a_source_error(tmp_path):
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, "wa")
    w.append(b"k", b"good")
    w.append(b"k", b"bad!")
    w.close()
    seg = list_segments(spool)[0]
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF
    seg.write_bytes(bytes(data))
    src = SpoolSource(spool, tmp_path / "state", sleep=lambda s: None)
    got = drain(src)
    assert got[0].value == b"good" and got[0].source_error is None
    assert got[1].source_error == "spool_bad_crc"
    src.commit()
    assert list_segments(spool) == []


def test_empty_and_headerless_segments_do_not_block_a_writer(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "wa-00000001.seg").write_bytes(b"RSSP")
    w = SpoolWriter(spool, "wa")
    w._number = 1
    w.append(b"k", b"after")
    w.close()
    src = SpoolSource(spool, tmp_path / "state", sleep=lambda s: None)
    assert [m.value for m in drain(src)] == [b"after"]


def test_pause_stops_reading(tmp_path):
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, "wa")
    w.append(b"k", b"x")
    w.close()
    src = SpoolSource(spool, tmp_path / "state", sleep=lambda s: None)
    src.pause()
    assert src.poll(10, 0) == []
    src.resume()
    assert len(src.poll(10, 0)) == 1


def test_interleaves_writers(tmp_path):
    spool = tmp_path / "spool"
    for name in ("wa", "wb"):
        w = SpoolWriter(spool, name)
        for i in range(3):
            w.append(name.encode(), b"%s%d" % (name.encode(), i))
        w.close()
    src = SpoolSource(spool, tmp_path / "state", sleep=lambda s: None)
    got = [m.value for m in drain(src)]
    assert sorted(got) == sorted([b"wa0", b"wa1", b"wa2", b"wb0", b"wb1", b"wb2"])
    assert [v for v in got if v.startswith(b"wa")] == [b"wa0", b"wa1", b"wa2"]
    assert os.path.exists(tmp_path / "state") is False  # nothing committed yet
