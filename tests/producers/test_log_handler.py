"""RunLogHandler: logging records as log lines of a run."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import pytest

from producers import Experiment, Run, RunLogHandler, Workspace
from producers.errors import TransportError
from producers.testing import InMemoryTransport
from schemas import LogBatch, LogLine, RunLimits


@pytest.fixture
def run(ws: Workspace) -> Run:
    return Experiment(ws, "logs").start_logging()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test_job.{uuid.uuid4().hex}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.handlers.clear()


def lines(ws: Workspace, transport: InMemoryTransport) -> list[LogLine]:
    ws.flush(5)
    return [line for batch in transport.events(LogBatch) for line in batch.lines]


def test_a_record_ships_time_level_logger_message_and_exception(
        ws: Workspace, transport: InMemoryTransport, run: Run, logger: logging.Logger) -> None:
    logger.addHandler(RunLogHandler(run))
    logger.info("epoch %d done", 3)
    try:
        raise ValueError("bad batch")
    except ValueError:
        logger.exception("step failed")
    first, second = lines(ws, transport)
    assert (first.stream, first.logger, first.level, first.message, first.exc_text) == (
        "logging", logger.name, logging.INFO, "epoch 3 done", None)
    assert first.time_ms > 1_000_000_000_000  # the record's own time, in ms
    assert second.level == logging.ERROR and second.message == "step failed"
    assert second.exc_text is not None and second.exc_text.startswith("Traceback") and "ValueError: bad batch" in second.exc_text


def test_the_level_is_the_loggers_unless_set(ws: Workspace, transport: InMemoryTransport, run: Run,
                                               logger: logging.Logger) -> None:
    handler = RunLogHandler(run)
    assert handler.level == logging.NOTSET
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.info("dropped by the logger")
    logger.warning("kept")
    assert [line.message for line in lines(ws, transport)] == ["kept"]


def test_long_messages_are_split_and_long_tracebacks_cut(tmp_path, transport: InMemoryTransport,
                                                         logger: logging.Logger) -> None:
    ws = Workspace(home=tmp_path / "h", transport=transport, install_signal_handlers=False,
                   limits=RunLimits(max_log_line_length=10))
    try:
        run = Experiment(ws, "logs").start_logging()
        logger.addHandler(RunLogHandler(run))
        logger.error("a" * 25, stack_info=True)
        out = lines(ws, transport)
        assert [line.message for line in out] == ["a" * 10, "a" * 10, "a" * 5]
        assert out[0].exc_text is None and out[1].exc_text is None
        assert out[2].exc_text is not None and len(out[2].exc_text) <= 40
    finally:
        ws.close(5)


def test_own_diagnostics_and_reentrant_records_are_not_shipped(ws: Workspace, transport: InMemoryTransport,
                                                               run: Run) -> None:
    handler = RunLogHandler(run)
    root_like = logging.getLogger("runstream.test_job")
    kafka_like = logging.getLogger("kafka.conn")
    for log in (root_like, kafka_like):
        log.addHandler(handler)
    try:
        root_like.warning("sdk diagnostics")
        kafka_like.warning("client chatter")
    finally:
        root_like.removeHandler(handler)
        kafka_like.removeHandler(handler)
    assert lines(ws, transport) == []


def test_records_after_the_run_ended_are_dropped_quietly(ws: Workspace, transport: InMemoryTransport, run: Run,
                                                         logger: logging.Logger,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    logger.addHandler(RunLogHandler(run))
    run.complete()
    logger.warning("too late")
    assert "Logging error" not in capsys.readouterr().err
    assert lines(ws, transport) == []


def test_without_a_run_it_uses_the_factory_on_the_first_record(ws: Workspace, transport: InMemoryTransport,
                                                               run: Run, logger: logging.Logger) -> None:
    calls: list[int] = []

    def factory() -> Run:
        calls.append(1)
        return run

    handler = RunLogHandler(run_factory=factory)
    logger.addHandler(handler)
    assert calls == []
    logger.warning("one")
    logger.warning("two")
    assert calls == [1] and handler.run is run
    assert [line.message for line in lines(ws, transport)] == ["one", "two"]


def test_stand_in_for_last_resort_keeps_unconfigured_warnings_on_stderr(
        ws: Workspace, run: Run, logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    # Only our handler (pytest's log capture adds its own to loggers that do not propagate).
    logger.handlers = [RunLogHandler(run, stand_in_for_last_resort=True)]
    logger.warning("visible")
    logger.info("below lastResort's level")
    assert capsys.readouterr().err == "visible\n"
    other = logging.StreamHandler()
    logger.addHandler(other)  # configured logging: lastResort is not Python's business any more
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(logging.lastResort, "handle", lambda record: pytest.fail("lastResort used"))
            logger.warning("handled by the StreamHandler")
    finally:
        logger.removeHandler(other)


def test_records_from_the_emitter_thread_are_ignored(ws: Workspace, transport: InMemoryTransport, run: Run,
                                                     logger: logging.Logger) -> None:
    logger.addHandler(RunLogHandler(run))
    thread = threading.Thread(target=logger.warning, args=("from the emitter",), name="runstream-emitter")
    thread.start()
    thread.join()
    logger.warning("from a user thread")
    assert [line.message for line in lines(ws, transport)] == ["from a user thread"]


class _OutageTransport(InMemoryTransport):
    """Refuses every send until :meth:`recover` (a broker coming back when the test says so)."""

    def __init__(self) -> None:
        super().__init__()
        self._up = threading.Event()

    def recover(self) -> None:
        self._up.set()

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        if not self._up.is_set():
            raise TransportError("broker unreachable")
        super().send(topic, key, value)


def test_a_full_buffer_never_stalls_a_logging_call_and_drops_are_counted(tmp_path) -> None:
    # Issue 12, item 1: the handler sits on the root logger (as in a submitted job), the buffer is tiny
    # and the transport refuses everything until all 400 calls have returned: a call that waited for room
    # would wait forever. Before the fix the user's thread waited inside emit() holding the handler lock,
    # the emitter's own "callers wait" warning reached the same handler and waited for that lock, and
    # nothing was ever sent again.
    transport = _OutageTransport()
    ws = Workspace(home=tmp_path / "h", transport=transport, install_signal_handlers=False, linger_ms=5,
                   batch_points=64, max_buffer_bytes=64 * 128)
    root = logging.getLogger()
    handler = RunLogHandler(Experiment(ws, "stall").start_logging())
    root.addHandler(handler)
    user = logging.getLogger("train")
    finished = threading.Event()

    def train() -> None:
        for i in range(400):
            user.warning("epoch %d %s", i, "x" * 200)
        finished.set()

    thread = threading.Thread(target=train, name="user")
    try:
        thread.start()
        assert finished.wait(60), "a logging call is stuck behind the SDK's full buffer"
        assert handler.dropped > 0
        transport.recover()
        assert ws.flush(10)  # the transport takes events again
        user.warning("after recovery")
        assert ws.flush(10)
        shipped = [line for batch in transport.events(LogBatch) for line in batch.lines]
        messages = [line.message for line in shipped]
        assert "after recovery" in messages
        notes = [line for line in shipped if line.logger == "runstream" and "dropped" in line.message]
        assert notes and notes[0].level == logging.WARNING
        assert sum(int(note.message.split()[0]) for note in notes) == handler.dropped
    finally:
        root.removeHandler(handler)
        thread.join(5)
        ws.close(5)
