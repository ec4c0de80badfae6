"""producers.jobs.capture: bytes to bounded lines, and the tail kept for error details."""

from __future__ import annotations

import pytest

from producers.jobs.capture import LineSplitter, TextTail


def test_lines_split_at_newlines_and_crlf() -> None:
    s = LineSplitter(100)
    assert s.feed(b"a\nb\r\nc") == ["a", "b"]
    assert s.feed(b"d\n\n") == ["cd", ""]
    assert s.finish() == []


def test_unterminated_last_line_comes_out_at_finish() -> None:
    s = LineSplitter(100)
    assert s.feed(b"x\nno end") == ["x"]
    assert s.finish() == ["no end"]
    assert s.finish() == []


def test_a_character_cut_between_reads_is_decoded_whole() -> None:
    data = "é€😀\n".encode()
    s = LineSplitter(100)
    out: list[str] = []
    for i in range(len(data)):
        out += s.feed(data[i:i + 1])
    assert out == ["é€😀"]


def test_binary_junk_is_kept_as_replacement_characters() -> None:
    s = LineSplitter(100)
    assert s.feed(b"ok\xff\xfe\x00bin\n") == ["ok\ufffd\ufffd\x00bin"]
    assert s.feed(b"\xe2\x82") == []
    assert s.finish() == ["\ufffd"]


def test_long_lines_are_split_and_a_pending_line_stays_bounded() -> None:
    s = LineSplitter(4)
    assert s.feed(b"abcdefghij\n") == ["abcd", "efgh", "ij"]
    out = s.feed(b"x" * 10)  # no newline yet: full pieces go now, at most 4 characters wait
    assert out == ["xxxx", "xxxx"] and len(s._partial) == 2
    assert s.feed(b"yyyy") == ["xxyy"]
    assert s.feed(b"\n") == ["yy"]
    big = LineSplitter(1000)
    for _ in range(1000):
        big.feed(b"z" * 999)
        assert len(big._partial) <= 1000


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LineSplitter(0)


def test_tail_keeps_the_last_characters() -> None:
    t = TextTail(20)
    assert t.text() == ""
    t.add("one")
    t.add("two")
    assert t.text() == "one\ntwo"
    for i in range(10):
        t.add(f"line {i}")
    text = t.text()
    assert len(text) <= 20 and text.startswith("...") and text.endswith("line 9")
    t.add("x" * 50)
    assert t.text() == "..." + "x" * 17
    with pytest.raises(ValueError):
        TextTail(3)
