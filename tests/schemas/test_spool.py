import os

import pytest

from schemas.spool import SEGMENT_MAGIC, SpoolCorruption, SpoolRecord, SpoolWriter, list_segments, read_segment, seal_abandoned, segment_is_live


def _records(directory):
    return [r for seg in list_segments(directory) for r in read_segment(seg)]


def test_append_read_and_roll(tmp_path):
    w = SpoolWriter(tmp_path, "w1", segment_bytes=200)
    for i in range(20):
        w.append(b"run", b"value-%d" % i)
    w.close()
    segs = list_segments(tmp_path)
    assert len(segs) > 1 and all(s.suffix == ".seg" for s in segs)
    assert [r.value for r in _records(tmp_path)] == [b"value-%d" % i for i in range(20)]


def test_resume_from_offset(tmp_path):
    w = SpoolWriter(tmp_path, "w1")
    w.append(b"k", b"a")
    w.append(b"k", b"b")
    seg = list_segments(tmp_path)[0]
    first = next(iter(read_segment(seg)))
    assert [r.value for r in read_segment(seg, first.next_offset)] == [b"b"]
    w.close()


def test_live_segment_is_locked_until_sealed(tmp_path):
    w = SpoolWriter(tmp_path, "w1")
    w.append(b"k", b"v")
    (seg,) = list_segments(tmp_path)
    assert seg.suffix == ".open" and segment_is_live(seg)
    assert seal_abandoned(tmp_path) == []
    w.close()
    assert not segment_is_live(list_segments(tmp_path)[0])


def test_abandoned_segment_from_a_dead_writer_is_sealed(tmp_path):
    pid = os.fork()
    if pid == 0:  # the child writes and dies without sealing
        w = SpoolWriter(tmp_path, "dead")
        w.append(b"k", b"v")
        os._exit(0)
    os.waitpid(pid, 0)
    (seg,) = list_segments(tmp_path)
    assert seg.suffix == ".open" and not segment_is_live(seg)
    assert seal_abandoned(tmp_path) == [seg.with_suffix(".seg")]
    assert [r.value for r in _records(tmp_path)] == [b"v"]


def test_torn_tail_of_a_live_segment_waits_but_of_a_sealed_one_is_reported(tmp_path):
    w = SpoolWriter(tmp_path, "w1")
    w.append(b"k", b"complete")
    w.close()
    (seg,) = list_segments(tmp_path)
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x10\x00")  # half a frame header
    out = list(read_segment(seg))
    assert isinstance(out[0], SpoolRecord) and isinstance(out[1], SpoolCorruption)
    open_path = seg.with_suffix(".open")
    os.rename(seg, open_path)
    assert [type(r) for r in read_segment(open_path)] == [SpoolRecord]


def test_bad_crc_is_reported_once(tmp_path):
    w = SpoolWriter(tmp_path, "w1")
    w.append(b"k", b"aaaa")
    w.append(b"k", b"bbbb")
    w.close()
    (seg,) = list_segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    out = list(read_segment(seg))
    assert isinstance(out[0], SpoolRecord)
    assert isinstance(out[1], SpoolCorruption) and out[1].reason == "bad_crc"


def test_garbage_segment(tmp_path):
    seg = tmp_path / "x-00000001.seg"
    seg.write_bytes(b"not a spool at all")
    (out,) = list(read_segment(seg))
    assert isinstance(out, SpoolCorruption) and out.reason == "bad_segment_magic"
    assert SEGMENT_MAGIC == b"RSSPOOL1"


@pytest.mark.parametrize("bad", ["", "a-b", "a/b", "x" * 65])
def test_writer_id_must_be_a_plain_token(tmp_path, bad):
    with pytest.raises(ValueError):
        SpoolWriter(tmp_path, bad)


def _bytes_read() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_following_a_growing_segment_reads_each_byte_about_once(tmp_path):
    # Issue 12, item 8: a reader that reopens a live segment at its offset used to read the whole file
    # again every time (quadratic I/O over a long run: 300 appends of 16 KiB read ~700 MB).
    writer = SpoolWriter(tmp_path, "w")
    offset, seen = 0, 0
    value = os.urandom(16 * 1024)
    before = _bytes_read()
    for i in range(300):
        writer.append(b"k", value)
        for item in read_segment(writer._path, offset):
            assert isinstance(item, SpoolRecord) and item.value == value
            offset = item.next_offset
            seen += 1
    read = _bytes_read() - before
    size = writer._path.stat().st_size
    writer.seal()
    assert seen == 300
    assert read < 3 * size, f"read {read:,} bytes to follow a {size:,}-byte segment"


def test_a_large_segment_read_from_an_offset_in_pieces(tmp_path):
    writer = SpoolWriter(tmp_path, "w", segment_bytes=64 * 1024 * 1024)
    values = [os.urandom(1 + (i * 7919) % 300_000) for i in range(200)]  # ~30 MB, records up to 300 KB
    for i, value in enumerate(values):
        writer.append(b"k%d" % i, value)
    writer.seal()
    [path] = list_segments(tmp_path)
    records = list(read_segment(path))
    assert [r.value for r in records] == values
    middle = records[100].offset
    assert [r.value for r in read_segment(path, middle)] == values[100:]
    assert records[-1].next_offset == path.stat().st_size
