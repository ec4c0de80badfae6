"""producers.jobs.logs: following a run's log across reads, and the printed form of a line."""

from __future__ import annotations

from schemas import LogLine
from producers.jobs.logs import ALL_STREAMS, LogFollower, format_line


class Reader:
    def __init__(self) -> None:
        self.lines: list[LogLine] = []

    def get_logs(self, run_id: str) -> list[LogLine]:
        assert run_id == "r"
        return list(self.lines)


def test_each_line_is_handed_out_once_even_when_a_late_one_lands_earlier() -> None:
    reader = Reader()
    follower = LogFollower(reader, "r")
    reader.lines = [LogLine(1, "stdout", "", 20, "a"), LogLine(3, "stdout", "", 20, "same")]
    assert [line.message for line in follower.new_lines()] == ["a", "same"]
    assert follower.new_lines() == []
    reader.lines = [LogLine(1, "stdout", "", 20, "a"), LogLine(2, "stderr", "", 30, "late"),
                    LogLine(3, "stdout", "", 20, "same"), LogLine(3, "stdout", "", 20, "same")]
    assert [line.message for line in follower.new_lines()] == ["late", "same"]  # the repeat is a new line


def test_streams_not_asked_for_are_counted_not_handed_out() -> None:
    reader = Reader()
    reader.lines = [LogLine(1, "logging", "t", 20, "rec"), LogLine(2, "stdout", "", 20, "out")]
    follower = LogFollower(reader, "r")
    assert [line.message for line in follower.new_lines()] == ["out"]
    assert follower.skipped_streams == {"logging": 1}
    assert len(LogFollower(reader, "r", streams=ALL_STREAMS).new_lines()) == 2


def test_format_line() -> None:
    assert format_line(LogLine(0, "stdout", "", 20, "epoch 1")) == "epoch 1"
    assert format_line(LogLine(0, "logging", "train", 40, "bad", "Traceback...")) == "ERROR train: bad\nTraceback..."
    assert format_line(LogLine(0, "logging", "", 20, "x")) == "INFO root: x"
    assert format_line(LogLine(1_700_000_000_123, "stderr", "", 30, "w"), timestamps=True) == (
        "2023-11-14T22:13:20.123Z w")
