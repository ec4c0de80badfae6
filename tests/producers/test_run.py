"""Every Run method and every call-time validation error, against the in-memory transport."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from producers import Experiment, InvalidLogCall, InvalidValueType, Run, RunNotActive, Workspace
from producers.testing import InMemoryTransport
from schemas import (
    FileChunk,
    ImageLogged,
    ListLogged,
    LogBatch,
    LogLine,
    PropertiesSet,
    RowLogged,
    RunLimits,
    RunStarted,
    RunStatusChanged,
    ScalarBatch,
    TableLogged,
    TagsSet,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


def points(transport: InMemoryTransport, run_id: str) -> list[tuple[str, int, float | str]]:
    """(name, step, value) of every scalar point of a run, in order."""
    out = []
    for batch in transport.events(ScalarBatch, run_id=run_id):
        texts = dict(zip(batch.text_pos, batch.text_values))
        name_idx, steps, _, values = batch.point_columns()
        for i, (n, step, value) in enumerate(zip(name_idx, steps, values)):
            out.append((batch.names[n], step, texts.get(i, value)))
    return out


@pytest.fixture
def exp(ws: Workspace) -> Experiment:
    return Experiment(ws, "mnist-sweep")


@pytest.fixture
def run(exp: Experiment) -> Run:
    return exp.start_logging(display_name="lr=0.1", tags={"team": "vision", "valueless": None},
                             properties={"lr": "0.1"})


def test_start_logging_emits_run_started(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    ws.flush()
    (started,) = transport.events(RunStarted)
    assert started.run_id == run.id and started.experiment == "mnist-sweep"
    assert started.display_name == "lr=0.1" and started.kind == "interactive" and started.parent_run_id is None
    assert started.tags == {"team": "vision", "valueless": None} and started.properties == {"lr": "0.1"}
    assert started.host == socket.gethostname() and started.pid == os.getpid()
    assert started.seq == 1 and started.writer_id == ws.emitter.writer_id
    assert started.created_ms == 1_700_000_000_000  # the injected clock
    assert run.id.startswith("mnist-sweep_") and run.display_name == "lr=0.1" and run.parent is None
    assert run.experiment.name == "mnist-sweep" and run.status == "Running" and run.kind == "interactive"
    assert repr(run) == f"Run(experiment='mnist-sweep', id={run.id!r}, status='Running')"


def test_log_builds_series_with_per_name_step_counters(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    for i in range(3):
        run.log("loss", 1.0 / (i + 1))
        run.log("acc", i / 10)
    run.log("loss", 0.1, step=10)
    run.log("loss", 0.05)  # continues after the explicit step
    run.log("acc", 7, description="accuracy")
    ws.flush()
    got = points(transport, run.id)
    assert [p for p in got if p[0] == "loss"] == [("loss", 0, 1.0), ("loss", 1, 0.5), ("loss", 2, 1 / 3),
                                                  ("loss", 10, 0.1), ("loss", 11, 0.05)]
    assert [p for p in got if p[0] == "acc"] == [("acc", 0, 0.0), ("acc", 1, 0.1), ("acc", 2, 0.2), ("acc", 3, 7.0)]
    batch = transport.events(ScalarBatch)[-1]
    assert batch.descriptions[batch.names.index("acc")] == "accuracy"
    assert all(t == 1_700_000_000_000 for b in transport.events(ScalarBatch) for t in b.point_columns()[2])


def test_log_keeps_nan_infinities_strings_and_numpy(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log("loss", float("nan"))
    run.log("loss", float("inf"))
    run.log("loss", np.float32(-np.inf))
    run.log("category", "Red")
    run.log("n", np.int64(3))
    run.log("b", True)
    run.log("zero_d", np.array(0.5))
    ws.flush()
    got = points(transport, run.id)
    loss = [v for n, _, v in got if n == "loss"]
    assert math.isnan(loss[0]) and loss[1] == math.inf and loss[2] == -math.inf
    assert ("category", 0, "Red") in got and ("n", 0, 3.0) in got and ("b", 0, 1.0) in got and ("zero_d", 0, 0.5) in got


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        (("n" * 256, 1.0), {}, InvalidLogCall),
        (("", 1.0), {}, InvalidLogCall),
        ((5, 1.0), {}, InvalidValueType),
        (("x", "v" * 256), {}, InvalidLogCall),
        (("x", None), {}, InvalidValueType),
        (("x", [1.0, 2.0]), {}, InvalidValueType),
        (("x", np.ones(3)), {}, InvalidValueType),
        (("x", 1.0), {"step": 1.5}, InvalidValueType),
        (("x", 1.0), {"step": True}, InvalidValueType),
        (("x", 1.0), {"description": 3}, InvalidValueType),
        (("x", 10**400), {}, InvalidLogCall),
    ],
)
def test_invalid_log_calls_log_nothing(ws: Workspace, transport: InMemoryTransport, run: Run, args: tuple,
                                       kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        run.log(*args, **kwargs)
    run.log("after", 1.0)
    ws.flush()
    assert points(transport, run.id) == [("after", 0, 1.0)]
    assert transport.events(ScalarBatch)[0].names == ["after"]


def test_log_list_accepts_generators_and_strings(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log_list("squares", (i * i for i in range(4)), description="i^2")
    run.log_list("mixed", [1, "two", np.float64(3)])
    run.log_list("empty", [])
    ws.flush()
    squares, mixed, empty = transport.events(ListLogged)
    assert squares.name == "squares" and squares.description == "i^2" and squares.values.values() == [0, 1, 4, 9]
    assert mixed.values.values() == [1.0, "two", 3.0] and empty.values.numbers == []


def test_long_lists_are_split_into_consecutive_messages(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    values = [float(i) for i in range(300_000)]
    run.log_list("long", values)
    ws.flush()
    parts = transport.events(ListLogged)
    assert len(parts) > 1 and all(p.name == "long" for p in parts)
    assert [p.seq for p in parts] == sorted(p.seq for p in parts)
    assert [v for p in parts for v in p.values.numbers] == values
    assert max(len(m.value) for m in transport.messages) < 1024 * 1024


def test_invalid_log_list(run: Run) -> None:
    with pytest.raises(InvalidValueType):
        run.log_list("x", 5)
    with pytest.raises(InvalidValueType):
        run.log_list("x", [1.0, None])
    with pytest.raises(InvalidLogCall):
        run.log_list("x", ["v" * 300])


def test_log_row_builds_rows(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log_row("per_class", description="by class", cls="cat", precision=0.9)
    run.log_row("per_class", cls="dog", precision=np.float32(0.5))
    ws.flush()
    first, second = transport.events(RowLogged)
    assert first.description == "by class" and second.description == ""
    assert [(c.name, c.values()) for c in first.columns] == [("cls", ["cat"]), ("precision", [0.9])]
    assert [c.values() for c in second.columns] == [["dog"], [0.5]]


def test_invalid_log_row(run: Run) -> None:
    with pytest.raises(InvalidLogCall, match="at least one column"):
        run.log_row("r")
    with pytest.raises(InvalidLogCall, match="16 columns"):
        run.log_row("r", **{f"c{i}": i for i in range(16)})
    with pytest.raises(InvalidLogCall, match="column name"):
        run.log_row("r", **{"c" * 256: 1})
    with pytest.raises(InvalidValueType):
        run.log_row("r", c=[1, 2])


def test_log_table(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log_table("curve", {"epoch": [1, 2, 3], "loss": [0.5, 0.4, "diverged"]}, description="d")
    ws.flush()
    (table,) = transport.events(TableLogged)
    assert table.name == "curve" and table.description == "d"
    assert [c.values() for c in table.columns] == [[1.0, 2.0, 3.0], [0.5, 0.4, "diverged"]]


def test_big_tables_are_split_by_rows(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    rows = 100_000
    run.log_table("big", {"a": list(range(rows)), "b": ["x"] * rows})
    ws.flush()
    parts = transport.events(TableLogged)
    assert len(parts) > 1
    assert [v for p in parts for v in p.columns[0].numbers] == [float(i) for i in range(rows)]
    assert all(v == "x" for p in parts for v in p.columns[1].values())
    assert max(len(m.value) for m in transport.messages) < 1024 * 1024


def test_invalid_log_table(run: Run) -> None:
    with pytest.raises(InvalidLogCall, match="equal lengths: a=2, b=1"):
        run.log_table("t", {"a": [1, 2], "b": [1]})
    with pytest.raises(InvalidValueType, match="dict"):
        run.log_table("t", [[1, 2]])
    with pytest.raises(InvalidLogCall, match="at least one column"):
        run.log_table("t", {})
    with pytest.raises(InvalidLogCall, match="16 columns"):
        run.log_table("t", {f"c{i}": [1] for i in range(16)})


def _image_events(transport: InMemoryTransport) -> tuple[list[FileChunk], ImageLogged]:
    chunks = transport.events(FileChunk)
    (image,) = transport.events(ImageLogged)
    return chunks, image


def test_log_image_from_png_and_jpeg_files(ws: Workspace, transport: InMemoryTransport, run: Run,
                                           tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    run.log_image("sample/0", path=tmp_path / "a.png", description="first")
    ws.flush()
    chunks, image = _image_events(transport)
    assert image.name == "sample/0" and image.description == "first" and image.content_type == "image/png"
    assert image.file_path.startswith("images/sample_0/") and image.file_path.endswith(".png")
    assert image.size == len(PNG) and chunks[0].path == image.file_path and chunks[0].data == PNG
    assert chunks[0].seq < image.seq
    transport.clear()
    (tmp_path / "b.jpg").write_bytes(JPEG)
    run.log_image("jpeg", path=str(tmp_path / "b.jpg"))
    ws.flush()
    assert _image_events(transport)[1].content_type == "image/jpeg"


def test_log_image_from_matplotlib(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    run.log_image("figure", plot=figure)
    plt.plot([3, 2, 1])
    run.log_image("pyplot", plot=plt)  # the module itself, as Azure ML samples pass it
    plt.close("all")
    ws.flush()
    images = transport.events(ImageLogged)
    assert [i.name for i in images] == ["figure", "pyplot"]
    data = b"".join(c.data for c in transport.events(FileChunk) if c.path == images[1].file_path)
    assert data.startswith(b"\x89PNG")


def test_invalid_images(tmp_path: Path, exp: Experiment, ws: Workspace, transport: InMemoryTransport) -> None:
    run = exp.start_logging()
    (tmp_path / "x.gif").write_bytes(b"GIF89a" + b"\x00" * 10)
    with pytest.raises(InvalidLogCall, match="not a PNG or JPEG"):
        run.log_image("x", path=tmp_path / "x.gif")
    with pytest.raises(InvalidLogCall, match="exactly one"):
        run.log_image("x")
    with pytest.raises(InvalidLogCall, match="exactly one"):
        run.log_image("x", path=tmp_path / "x.gif", plot=object())
    with pytest.raises(InvalidValueType, match="matplotlib"):
        run.log_image("x", plot=object())
    with pytest.raises(InvalidLogCall, match="cannot read"):
        run.log_image("x", path=tmp_path / "missing.png")
    small = Workspace(home=tmp_path, transport=InMemoryTransport(), install_signal_handlers=False,
                      limits=RunLimits(max_image_bytes=10))
    (tmp_path / "big.png").write_bytes(PNG)
    with pytest.raises(InvalidLogCall, match="limit is 10"):
        Experiment(small, "e").start_logging().log_image("x", path=tmp_path / "big.png")
    small.close()
    ws.flush()
    assert transport.events(ImageLogged) == [] and transport.events(FileChunk) == []


def _file(transport: InMemoryTransport, path: str) -> bytes:
    chunks = [c for c in transport.events(FileChunk) if c.path == path]
    assert [c.chunk_index for c in chunks] == list(range(chunks[0].chunk_count))
    data = b"".join(c.data for c in chunks)
    assert len(data) == chunks[0].total_size and hashlib.sha256(data).hexdigest() == chunks[0].sha256
    assert len({c.upload_id for c in chunks}) == 1
    return data


def test_upload_file_from_path_and_streams(tmp_path: Path, clock: object) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, file_chunk_bytes=1000)
    run = Experiment(ws, "e").start_logging()
    payload = os.urandom(3500)
    (tmp_path / "model.bin").write_bytes(payload)
    run.upload_file("outputs/model.bin", tmp_path / "model.bin")
    run.upload_file("outputs/stream.bin", io.BytesIO(payload[:10]))
    run.upload_file("outputs/notes.txt", io.StringIO("héllo"))
    run.upload_file("outputs/empty", io.BytesIO(b""))
    ws.flush()
    assert _file(transport, "outputs/model.bin") == payload
    assert len([c for c in transport.events(FileChunk) if c.path == "outputs/model.bin"]) == 4
    assert _file(transport, "outputs/stream.bin") == payload[:10]
    assert _file(transport, "outputs/notes.txt") == "héllo".encode()
    assert _file(transport, "outputs/empty") == b""
    types = {c.path: c.content_type for c in transport.events(FileChunk)}
    assert types["outputs/notes.txt"] == "text/plain" and types["outputs/model.bin"] == "application/octet-stream"
    ws.close()


def test_upload_file_reads_and_hashes_off_the_callers_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12, item 1: hashing a large file on the caller's thread stalls training for as long as it takes.
    real_sha256 = hashlib.sha256
    hashing_threads: set[str] = set()

    class _Recording:
        def __init__(self) -> None:
            self._digest = real_sha256()

        def update(self, data: bytes) -> None:
            hashing_threads.add(threading.current_thread().name)
            self._digest.update(data)

        def hexdigest(self) -> str:
            return self._digest.hexdigest()

    monkeypatch.setattr("producers.files.hashlib.sha256", _Recording)
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False, file_chunk_bytes=1000)
    run = Experiment(ws, "e").start_logging()
    payload = os.urandom(5000)
    (tmp_path / "model.bin").write_bytes(payload)
    run.upload_file("outputs/model.bin", tmp_path / "model.bin")
    run.upload_file("outputs/stream.bin", io.BytesIO(payload))
    run.complete()  # the final status waits for the run's uploads
    monkeypatch.undo()
    assert hashing_threads and threading.current_thread().name not in hashing_threads
    assert _file(transport, "outputs/model.bin") == payload and _file(transport, "outputs/stream.bin") == payload
    kinds = [type(event).__name__ for event in transport.events()]
    assert kinds[-1] == "RunStatusChanged" and "FileChunk" not in kinds[kinds.index("RunStatusChanged"):]
    ws.close()


def test_a_file_that_grows_past_the_limit_before_it_is_read_is_not_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False,
                   limits=RunLimits(max_file_bytes=5))
    run = Experiment(ws, "e").start_logging()
    target = tmp_path / "growing"
    target.write_bytes(b"12345")
    opened = threading.Event()

    def grow() -> None:  # queued first, so it runs after the call opened the file and before the upload reads it
        opened.wait(5)
        target.write_bytes(b"123456")

    ws.emitter.uploads.submit("other", grow)
    run.upload_file("outputs/growing", target)
    opened.set()
    ws.flush()
    assert transport.events(FileChunk) == []
    assert "grew past the file limit" in caplog.text
    ws.close()


@pytest.mark.parametrize("name", ["", "/abs/path", "a/../b", "a//b", "./a", 5])
def test_invalid_upload_names(run: Run, tmp_path: Path, name: object) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises((InvalidLogCall, InvalidValueType)):
        run.upload_file(name, tmp_path / "f")  # type: ignore[arg-type]


def test_upload_limits_and_bad_sources(tmp_path: Path) -> None:
    ws = Workspace(home=tmp_path, transport=InMemoryTransport(), install_signal_handlers=False,
                   limits=RunLimits(max_file_bytes=5))
    run = Experiment(ws, "e").start_logging()
    (tmp_path / "big").write_bytes(b"123456")
    with pytest.raises(InvalidLogCall, match="file limit"):
        run.upload_file("outputs/big", tmp_path / "big")
    with pytest.raises(InvalidLogCall, match="file limit"):
        run.upload_file("outputs/big", io.BytesIO(b"123456"))
    with pytest.raises(InvalidLogCall, match="cannot read"):
        run.upload_file("outputs/x", tmp_path / "missing")
    with pytest.raises(InvalidValueType, match="readable stream"):
        run.upload_file("outputs/x", 42)
    ws.close()


def test_upload_folder(ws: Workspace, transport: InMemoryTransport, run: Run, tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    run.upload_folder("outputs", root)
    ws.flush()
    assert _file(transport, "outputs/a.txt") == b"a" and _file(transport, "outputs/sub/b.txt") == b"b"
    with pytest.raises(InvalidLogCall, match="not a folder"):
        run.upload_folder("outputs", tmp_path / "nope")


def test_tags_and_properties(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.tag("valueless")
    run.tag("k", "v")
    run.set_tags({"a": "1", "b": None})
    run.set_tags(["c", "d"])
    run.add_properties({"seed": 42})
    run.add_properties({"seed": "42"})  # same value again is fine
    ws.flush()
    tags = [t.tags for t in transport.events(TagsSet)]
    assert tags == [{"valueless": None}, {"k": "v"}, {"a": "1", "b": None}, {"c": None, "d": None}]
    assert [p.properties for p in transport.events(PropertiesSet)] == [{"seed": "42"}, {"seed": "42"}]


def test_tag_and_property_validation(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    with pytest.raises(InvalidLogCall, match="immutable"):
        run.add_properties({"lr": "0.2"})  # set to 0.1 at start
    with pytest.raises(InvalidLogCall, match="key is 101"):
        run.tag("k" * 101)
    with pytest.raises(InvalidLogCall, match="1001 characters"):
        run.tag("k", "v" * 1001)
    with pytest.raises(InvalidValueType):
        run.set_tags("not-a-dict")
    with pytest.raises(InvalidValueType):
        run.add_properties(["x"])  # type: ignore[arg-type]
    run.set_tags({f"t{i}": None for i in range(48)})  # 2 from start_logging + 48 = 50
    with pytest.raises(InvalidLogCall, match="more than 50 tags"):
        run.tag("one-too-many")
    run.tag("t0", "again")  # an existing key does not count twice
    run.add_properties({f"p{i}": "v" for i in range(49)})
    with pytest.raises(InvalidLogCall, match="more than 50 properties"):
        run.add_properties({"one-too-many": "v"})
    ws.flush()
    all_tags = {k for t in transport.events(TagsSet) for k in t.tags}
    assert "one-too-many" not in all_tags
    assert "one-too-many" not in {k for p in transport.events(PropertiesSet) for k in p.properties}


def test_start_logging_validation(exp: Experiment) -> None:
    with pytest.raises(InvalidLogCall, match="display_name"):
        exp.start_logging(display_name="d" * 257)
    with pytest.raises(InvalidLogCall, match="51 tags"):
        exp.start_logging(tags={f"t{i}": None for i in range(51)})
    with pytest.raises(InvalidValueType, match="needs a value"):
        exp.start_logging(properties={"p": None})


def test_experiment_names() -> None:
    ws = Workspace(transport=InMemoryTransport(), install_signal_handlers=False)
    for bad in ["", "has space", "-leading", "x" * 257, "dots.are.out"]:
        with pytest.raises(InvalidLogCall):
            Experiment(ws, bad)
    with pytest.raises(InvalidValueType):
        Experiment(ws, 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueType):
        Experiment("ws", "x")  # type: ignore[arg-type]
    assert Experiment(ws, "a_b-1") == Experiment(ws, "a_b-1")


def test_a_name_keeps_one_kind(run: Run) -> None:
    run.log("m", 1.0)
    with pytest.raises(InvalidLogCall, match="scalar"):
        run.log_list("m", [1.0])
    run.log_row("r", a=1)
    with pytest.raises(InvalidLogCall, match="row"):
        run.log("r", 1.0)
    with pytest.raises(InvalidLogCall, match="row"):
        run.log_table("r", {"a": [1]})


def test_per_process_limits_warn_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    transport = InMemoryTransport()
    ws = Workspace(home=tmp_path, transport=transport, install_signal_handlers=False,
                   limits=RunLimits(max_metric_names=3, max_rows_per_metric=5))
    run = Experiment(ws, "e").start_logging()
    with caplog.at_level(logging.WARNING, logger="runstream"):
        for name in ["a", "b", "c", "d", "e"]:
            run.log(name, 1.0)
        for _ in range(12):
            run.log("a", 2.0)
        run.log_list("lst", range(4))
        run.log_list("lst", range(4))
        ws.flush()
    names_warnings = [r for r in caplog.records if "metric names" in r.getMessage()]
    rows_warnings = [r for r in caplog.records if "rows" in r.getMessage()]
    assert len(names_warnings) == 1 and all(r.name.startswith("runstream") for r in caplog.records)
    assert {("'a'" in r.getMessage()) for r in rows_warnings} == {True, False} and len(rows_warnings) == 2
    assert len(points(transport, run.id)) == 17  # warned, never dropped
    ws.close()


def test_complete_fail_cancel(exp: Experiment, ws: Workspace, transport: InMemoryTransport) -> None:
    done, failed, failed_exc, canceled = (exp.start_logging() for _ in range(4))
    done.complete()
    failed.fail("bad data", error_code="E42")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        failed_exc.fail(exc)
    canceled.cancel()
    ws.flush()
    status = {e.run_id: e for e in transport.events(RunStatusChanged)}
    assert status[done.id].status == "Completed" and status[done.id].error_details is None
    assert status[failed.id].status == "Failed" and status[failed.id].error_details == "E42: bad data"
    assert "ValueError: boom" in status[failed_exc.id].error_details and "Traceback" in status[failed_exc.id].error_details
    assert status[canceled.id].status == "Canceled"
    assert done.status == "Completed" and canceled.status == "Canceled"
    with pytest.raises(InvalidValueType):
        exp.start_logging().fail(42)  # type: ignore[arg-type]


def test_an_ended_run_takes_data_but_its_lifecycle_is_closed(exp: Experiment, transport: InMemoryTransport,
                                                               ws: Workspace, tmp_path: Path) -> None:
    # Issue 12, item 6: Azure ML tags a completed run (the best run of a finished sweep); MLflow takes
    # metrics on a FINISHED run. Only the lifecycle itself is closed.
    run = exp.start_logging()
    run.log("x", 1.0)
    run.complete()
    (tmp_path / "f").write_text("x")
    run.log("x", 2.0)
    run.log("new", 1)
    run.log_list("l", [1])
    run.log_row("r", a=1)
    run.log_table("t", {"a": [1]})
    run.tag("best")
    run.add_properties({"p": "v"})
    run.upload_file("outputs/f", tmp_path / "f")
    assert ws.flush(5)
    assert [e.tags for e in transport.events(TagsSet, run_id=run.id)] == [{"best": None}]
    assert [e.path for e in transport.events(FileChunk, run_id=run.id)] == ["outputs/f"]
    assert sum(len(b.point_columns()[3]) for b in transport.events(ScalarBatch, run_id=run.id)) == 3
    statuses = [e.status for e in transport.events(RunStatusChanged, run_id=run.id)]
    assert statuses == ["Completed"]  # the status stays
    for call in (run.complete, run.fail, run.cancel, lambda: run.child_run(),
                 lambda: run.log_lines([LogLine(1, "stdout", "", 20, "x")])):
        with pytest.raises(RunNotActive):
            call()


def test_context_manager(exp: Experiment, ws: Workspace, transport: InMemoryTransport) -> None:
    with exp.start_logging() as ok:
        ok.log("x", 1.0)
    with pytest.raises(RuntimeError):
        with exp.start_logging() as bad:
            raise RuntimeError("training diverged" + "!" * 5000)
    with pytest.raises(KeyboardInterrupt):
        with exp.start_logging() as interrupted:
            raise KeyboardInterrupt
    with exp.start_logging() as completed_inside:
        completed_inside.complete()
    ws.flush()
    status = {e.run_id: e for e in transport.events(RunStatusChanged)}
    assert status[ok.id].status == "Completed" and status[interrupted.id].status == "Canceled"
    assert status[bad.id].status == "Failed"
    details = status[bad.id].error_details
    assert "RuntimeError: training diverged" in details and len(details) <= 3000
    assert len([e for e in transport.events(RunStatusChanged) if e.run_id == completed_inside.id]) == 1


def test_child_runs(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    child = run.child_run("fold-1")
    child.log("x", 1.0)
    child.complete()
    ws.flush()
    started = {e.run_id: e for e in transport.events(RunStarted)}
    assert started[child.id].parent_run_id == run.id and started[child.id].kind == "child"
    assert started[child.id].display_name == "fold-1"
    assert child.parent is run and child.kind == "child" and child.display_name == "fold-1"
    named = run.child_run(run_id="my-child-id")
    assert named.id == "my-child-id"
    with pytest.raises(InvalidLogCall):
        run.child_run(run_id="x" * 257)


def test_per_run_order_of_all_events(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log("x", 1.0)
    run.log("x", 2.0)
    run.tag("between")
    run.log("x", 3.0)
    run.log_lines([LogLine(1, "stdout", "", 20, "hello")])
    run.complete()
    kinds = [type(e).__name__ for e in transport.events(run_id=run.id)]
    assert kinds == ["RunStarted", "ScalarBatch", "TagsSet", "ScalarBatch", "LogBatch", "RunStatusChanged"]
    seqs = [e.seq for e in transport.events(run_id=run.id)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    batches = transport.events(ScalarBatch, run_id=run.id)
    assert [b.point_columns()[3] for b in batches] == [[1.0, 2.0], [3.0]]
    assert [b.point_columns()[1] for b in batches] == [[0, 1], [2]]


def test_log_lines_are_batched(ws: Workspace, transport: InMemoryTransport, run: Run) -> None:
    run.log_lines([LogLine(1, "stdout", "", 20, "a"), LogLine(2, "stderr", "", 40, "b")])
    run.log_lines([LogLine(3, "logging", "train", 30, "c", "Traceback...")])
    run.log_lines([])
    ws.flush()
    (batch,) = transport.events(LogBatch)
    assert [line.message for line in batch.lines] == ["a", "b", "c"] and batch.lines[2].exc_text == "Traceback..."


def test_flush_and_last_seq(ws: Workspace, run: Run) -> None:
    run.log("x", 1.0)
    assert run.flush(5.0)
    assert ws.emitter.last_seq(run.id) == 2 and ws.emitter.last_seq("unknown") == 0
    assert len(ws.emitter.writer_id) == 32 and int(ws.emitter.writer_id, 16) >= 0


def test_same_run_handles_share_state(exp: Experiment, ws: Workspace, transport: InMemoryTransport) -> None:
    run = exp.start_logging()
    run.log("x", 1.0)
    again = Run(exp, run.id)  # known in this process: no reader involved
    again.log("x", 2.0)
    assert again == run and hash(again) == hash(run)
    ws.flush()
    assert [s for _, s, _ in points(transport, run.id)] == [0, 1]
