"""Reading runs back gives Azure ML's shapes, on the embedded default (spool + chDB, no server)
and on the real stack (Kafka + `runstream ingest` + ClickHouse): the same tests, parametrized."""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException as ServerError

import schemas
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from producers.errors import IngestNotRunning, ReadError, RunNotFound
from producers.reading import open_reader
from schemas.settings import WorkspaceSettings
from schemas import (
    Column,
    FileChunk,
    Heartbeat,
    ImageLogged,
    ListLogged,
    LogBatch,
    LogLine,
    RowLogged,
    RunStarted,
    RunStatusChanged,
    ScalarBatch,
    TableLogged,
    TagsSet,
)
from schemas.spool import SpoolWriter

NOW_MS = int(time.time() * 1000)


@dataclass
class Backend:
    name: str
    settings: WorkspaceSettings
    send: Callable[[list[schemas.Event]], None]
    topic: str | None = None


@pytest.fixture(params=["embedded", "stack"])
def backend(request, tmp_path, unique_name):
    home = tmp_path / "home"
    if request.param == "embedded":
        def send(events):
            writer = SpoolWriter(home / "spool", events[0].writer_id)
            for e in events:
                writer.append(e.run_id.encode(), schemas.encode(e))
            writer.close()

        yield Backend("embedded", WorkspaceSettings(home=home, visible_timeout_s=60), send)
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    url = request.getfixturevalue("clickhouse_url").rsplit("/", 1)[0] + "/" + unique_name
    create_topic(bootstrap, unique_name, 4)
    worker = IngestProcess(["--kafka", bootstrap, "--clickhouse", url, "--topic", unique_name, "--group",
                            unique_name, "--dlq-topic", unique_name + ".dlq", "--flush-interval", "0.1",
                            "--home", str(home)], tmp_path / "worker.log").start()

    def send(events):
        produce(bootstrap, unique_name, [(e.run_id.encode(), schemas.encode(e)) for e in events])

    try:
        yield Backend("stack", WorkspaceSettings(home=home, kafka=bootstrap, clickhouse=url, visible_timeout_s=90), send,
                      topic=unique_name)
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
        print(worker.output()[-6000:])  # shown by pytest when the test failed
        from clickhouse_driver import Client

        client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
        client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        client.disconnect()


class Log:
    """Builds one writer's events with increasing seq."""

    def __init__(self, run_id: str, writer_id: str, experiment: str = "readback") -> None:
        self.run_id, self.writer_id, self.experiment = run_id, writer_id, experiment
        self.events: list[schemas.Event] = []

    def add(self, cls: Any, created_ms: int | None = None, **fields: Any) -> None:
        # "Now" at the call, not at import: the suite may run minutes after collection, and a
        # heartbeat that old reads as a lost process.
        created_ms = int(time.time() * 1000) if created_ms is None else created_ms
        self.events.append(cls(writer_id=self.writer_id, seq=len(self.events) + 1, run_id=self.run_id,
                               experiment=self.experiment, created_ms=created_ms, **fields))

    @property
    def last_seq(self) -> int:
        return len(self.events)


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
BLOB = bytes(range(256)) * 5000  # 1.28 MB, three chunks


def _chunks(log: Log, path: str, data: bytes, upload: str, size: int = 512 * 1024) -> None:
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    for i, part in enumerate(parts):
        log.add(FileChunk, path=path, upload_id=upload, chunk_index=i, chunk_count=len(parts),
                total_size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="application/x",
                data=part)


def _complete_run(run_id: str) -> Log:
    log = Log(run_id, f"w_{run_id}")
    log.add(RunStarted, created_ms=NOW_MS - 5000, display_name="lr=0.1", tags={"team": "vision", "flag": None},
            properties={"lr": "0.1"}, host="node", pid=42)
    log.add(Heartbeat, interval_ms=30_000)
    log.add(ScalarBatch, names=["loss", "final", "Category"], descriptions=["", "", ""],
            name_idx=[0, 0, 0, 1, 2], steps=[2, 0, 1, 0, 0], times_ms=[3, 1, 2, 4, 5],
            values=[0.25, 1.0, 0.5, 0.9, math.nan], text_pos=[4], text_values=["Red"])
    log.add(ListLogged, name="accs", description="", values=Column("accs", [0.5, 0.75]))
    log.add(RowLogged, name="xy", description="", columns=[Column("x", [1.0]), Column("y", [10.0])])
    log.add(RowLogged, name="xy", description="", columns=[Column("x", [2.0]), Column("y", [20.0])])
    log.add(TableLogged, name="cm", description="", columns=[Column("label", [math.nan, math.nan], [0, 1],
                                                                    ["cat", "dog"]), Column("count", [3.0, 4.0])])
    _chunks(log, "images/roc/1.png", PNG, "up_img")
    log.add(ImageLogged, name="roc", description="", file_path="images/roc/1.png", content_type="image/png",
            size=len(PNG))
    _chunks(log, "outputs/model.bin", b"old", "up_1")
    _chunks(log, "outputs/model.bin", BLOB, "up_2")
    log.add(TagsSet, tags={"team": "nlp", "stage": "ft"})
    log.add(LogBatch, lines=[LogLine(NOW_MS, "stdout", "", 20, "epoch 1"),
                             LogLine(NOW_MS + 1, "logging", "train", 40, "bad", "Traceback ...")])
    log.add(RunStatusChanged, status="Completed")
    return log


def test_metrics_tags_details_files_logs(backend, tmp_path):
    log = _complete_run("run_rb_1")
    backend.send(log.events)
    reader = open_reader(backend.settings)
    reader.wait_visible(log.run_id, log.writer_id, log.last_seq)
    metrics = reader.get_metrics(log.run_id)
    assert metrics["loss"] == [1.0, 0.5, 0.25]  # step order
    assert metrics["final"] == 0.9 and metrics["Category"] == "Red"
    assert metrics["accs"] == [0.5, 0.75]
    assert metrics["xy"] == {"x": [1.0, 2.0], "y": [10.0, 20.0]}
    assert metrics["cm"] == {"label": ["cat", "dog"], "count": [3.0, 4.0]}
    assert metrics["roc"] == "runstream://run_rb_1/images/roc/1.png"
    assert reader.get_metrics(log.run_id, name="loss") == {"loss": [1.0, 0.5, 0.25]}
    assert reader.get_metrics(log.run_id, name="missing") == {}
    assert reader.get_tags(log.run_id) == {"team": "nlp", "flag": "", "stage": "ft"}
    assert reader.get_properties(log.run_id) == {"lr": "0.1"}
    assert reader.get_status(log.run_id) == "Completed"
    details = reader.get_details(log.run_id)
    assert details["status"] == "Completed" and details["displayName"] == "lr=0.1" and details["error"] is None
    assert details["startTimeUtc"] and details["endTimeUtc"] and details["properties"] == {"lr": "0.1"}
    assert reader.get_file_names(log.run_id) == ["images/roc/1.png", "outputs/model.bin"]
    out = reader.download_file(log.run_id, "outputs/model.bin", tmp_path / "model.bin")
    assert Path(out).read_bytes() == BLOB  # the later upload replaced the earlier one
    img = reader.download_file(log.run_id, metrics["roc"], tmp_path)
    assert Path(img).read_bytes() == PNG
    assert [(line.stream, line.message) for line in reader.get_logs(log.run_id)] == [("stdout", "epoch 1"),
                                                                                  ("logging", "bad")]
    runs = reader.get_runs("readback")
    assert [(r.run_id, r.status) for r in runs] == [("run_rb_1", "Completed")]
    assert reader.get_run("readback", "run_rb_1").host == "node"
    with pytest.raises(RunNotFound):
        reader.get_run("readback", "nope")


def test_redelivered_messages_never_double_a_value(backend):
    log = Log("run_rb_dup", "w_dup")
    log.add(RunStarted)
    log.add(ScalarBatch, names=["loss"], descriptions=[""], name_idx=[0, 0], steps=[0, 1], times_ms=[0, 1],
            values=[1.0, 2.0])
    log.add(RowLogged, name="xy", description="", columns=[Column("x", [1.0])])
    backend.send(log.events + log.events[1:])  # the same messages twice, as after a crash
    reader = open_reader(backend.settings)
    reader.wait_visible(log.run_id, log.writer_id, log.last_seq)
    assert reader.get_metrics(log.run_id) == {"loss": [1.0, 2.0], "xy": {"x": [1.0]}}


def test_silent_running_run_reads_failed_process_lost(backend):
    log = Log("run_rb_lost", "w_lost")
    log.add(RunStarted, created_ms=NOW_MS - 3_600_000)
    log.add(Heartbeat, created_ms=NOW_MS - 3_500_000, interval_ms=30_000)
    alive = Log("run_rb_alive", "w_alive")
    alive.add(RunStarted)
    alive.add(Heartbeat, interval_ms=30_000)
    backend.send(log.events)
    backend.send(alive.events)
    reader = open_reader(backend.settings)
    reader.wait_visible(log.run_id, log.writer_id, log.last_seq)
    reader.wait_visible(alive.run_id, alive.writer_id, alive.last_seq)
    assert reader.get_status(log.run_id) == "Failed"
    details = reader.get_details(log.run_id)
    assert details["error"]["code"] == "ProcessLost" and "process lost" in details["error"]["message"]
    assert reader.get_status(alive.run_id) == "Running"
    assert {r.run_id: r.status for r in reader.get_runs("readback")} == {
        "run_rb_lost": "Failed", "run_rb_alive": "Running"}


def test_rejections_are_readable(backend):
    log = Log("run_rb_rej", "w_rej")
    log.add(RunStarted)
    log.add(ScalarBatch, names=[f"m{i}" for i in range(51)], descriptions=[""] * 51, name_idx=list(range(51)),
            steps=[0] * 51, times_ms=[0] * 51, values=[1.0] * 51)
    backend.send(log.events)
    reader = open_reader(backend.settings)
    reader.wait_visible(log.run_id, log.writer_id, log.last_seq)
    assert len(reader.get_metrics(log.run_id)) == 50
    rejections = reader.get_rejections(log.run_id)
    assert [r["reason"] for r in rejections] == ["too_many_metric_names"]
    assert "m50" in rejections[0]["detail"]


def test_wait_settled_returns_once_the_ending_writer_is_visible(backend):
    log = Log("run_rb_settle", "w_settle")
    log.add(RunStarted)
    log.add(LogBatch, lines=[LogLine(NOW_MS, "stdout", "", 20, "last words")])
    log.add(RunStatusChanged, status="Completed")
    backend.send(log.events)
    reader = open_reader(backend.settings)
    def completed() -> bool:
        try:
            return reader.get_status(log.run_id) == "Completed"
        except RunNotFound:
            return False

    wait_until(completed, timeout_s=60, what="the final status")
    reader.wait_settled(log.run_id)
    assert reader.visible_seq(log.run_id, log.writer_id) == log.last_seq
    assert [line.message for line in reader.get_logs(log.run_id)] == ["last words"]
    reader.wait_settled("run_without_status", timeout=0.5)  # nothing ended: returns at once


def test_not_visible_in_time(backend):
    reader = open_reader(replace(backend.settings, visible_timeout_s=0.5))
    expected = IngestNotRunning if backend.name == "stack" else ReadError
    with pytest.raises(expected, match="runstream ingest" if backend.name == "stack" else "visible"):
        reader.wait_visible("run_never", "w_never", 5)


def test_sdk_logs_then_reads_back(backend, monkeypatch, tmp_path):
    """The user's path: log with the SDK, read with the same Run objects (read-your-writes)."""
    from producers import Experiment, Workspace

    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = backend.settings
    blob = tmp_path / "blob.bin"
    blob.write_bytes(BLOB)
    with Workspace(kafka=s.kafka, clickhouse=s.clickhouse, home=s.home, topic=backend.topic,
                   install_signal_handlers=False) as ws:
        experiment = Experiment(ws, "sdk-readback")
        run = experiment.start_logging(display_name="sdk")
        for i in range(5):
            run.log("loss", 1.0 / (i + 1))
        run.log("final", 0.5)
        run.log("Category", "Red")
        run.log_list("accs", [0.1, 0.2])
        run.log_row("xy", x=1, y=2)
        run.log_row("xy", x=2, y=4)
        run.log_table("cm", {"label": ["a", "b"], "n": [1, 2]})
        run.tag("team", "vision")
        run.add_properties({"lr": "0.1"})
        run.upload_file("outputs/blob.bin", str(blob))
        run.complete()
        metrics = run.get_metrics()
        assert metrics["loss"] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
        assert metrics["final"] == 0.5 and metrics["Category"] == "Red"
        assert metrics["accs"] == [0.1, 0.2]
        assert metrics["xy"] == {"x": [1.0, 2.0], "y": [2.0, 4.0]}
        assert metrics["cm"] == {"label": ["a", "b"], "n": [1.0, 2.0]}
        assert run.get_metrics(name="final") == {"final": 0.5}
        assert run.get_status() == "Completed"
        assert run.get_tags()["team"] == "vision"
        assert run.get_properties()["lr"] == "0.1"
        assert "outputs/blob.bin" in run.get_file_names()
        target = run.download_file("outputs/blob.bin", tmp_path / "copy.bin")
        assert Path(target).read_bytes() == BLOB
        assert run.get_details()["displayName"] == "sdk"
        assert [r.id for r in experiment.get_runs()] == [run.id]


def test_kafka_mode_without_ingest_names_the_missing_command(kafka_bootstrap, clickhouse_url, unique_name,
                                                             tmp_path, monkeypatch):
    from producers import Experiment, Workspace

    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC"):
        monkeypatch.delenv(var, raising=False)
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, unique_name, 1)
    try:
        with Workspace(kafka=kafka_bootstrap, clickhouse=url, home=tmp_path / "home", topic=unique_name,
                       install_signal_handlers=False, flush_timeout_s=2) as ws:
            run = Experiment(ws, "no-ingest").start_logging()
            run.log("loss", 1.0)
            with pytest.raises(IngestNotRunning, match="runstream ingest"):
                run.get_metrics()
            run.complete()
    finally:
        from clickhouse_driver import Client

        client = Client.from_url(clickhouse_url.rsplit("/", 1)[0] + "/default")
        client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        client.disconnect()


READ_ONLY_USER = "runstream_reader"
"""deploy/local/clickhouse/users.xml: profile readonly=1 (no INSERT, no DDL, no SET)."""


def test_every_read_works_through_a_read_only_user(kafka_bootstrap, clickhouse_url, unique_name, tmp_path):
    # Issue 12, item 5: the read path ran migrate() (CREATE DATABASE IF NOT EXISTS ...) on its first read,
    # which a read-only user may not do. Readers never run DDL.
    server = urlsplit(clickhouse_url)
    writer_url = f"{server.scheme}://{server.netloc}/{unique_name}"
    reader_url = f"{server.scheme}://{READ_ONLY_USER}@{server.hostname}:{server.port}/{unique_name}"
    admin = Client.from_url(f"{server.scheme}://{server.netloc}/default")
    read_only = Client.from_url(f"{server.scheme}://{READ_ONLY_USER}@{server.hostname}:{server.port}/default")
    try:
        with pytest.raises(ServerError, match="readonly"):  # the user really cannot write
            read_only.execute(f"CREATE DATABASE `{unique_name}_x`")
        settings = WorkspaceSettings(home=tmp_path / "reader", kafka=kafka_bootstrap, clickhouse=reader_url,
                                     visible_timeout_s=90)
        reader = open_reader(settings)
        # Before ingest created anything: nothing to read, and the reader created nothing.
        assert reader.get_runs("readback") == []
        with pytest.raises(RunNotFound):
            reader.get_run("readback", "run_ro")
        assert admin.execute("SELECT count() FROM system.databases WHERE name = %(db)s", {"db": unique_name}) == [(0,)]
        create_topic(kafka_bootstrap, unique_name, 2)
        log = _complete_run("run_ro")
        produce(kafka_bootstrap, unique_name, [(e.run_id.encode(), schemas.encode(e)) for e in log.events])
        worker = IngestProcess(["--kafka", kafka_bootstrap, "--clickhouse", writer_url, "--topic", unique_name,
                                "--group", unique_name, "--dlq-topic", unique_name + ".dlq", "--flush-interval",
                                "0.1", "--home", str(tmp_path / "ingest")], tmp_path / "worker.log").start()
        try:
            reader.wait_visible(log.run_id, log.writer_id, log.last_seq)
            assert reader.get_metrics(log.run_id)["loss"] == [1.0, 0.5, 0.25]
            assert reader.get_tags(log.run_id) == {"team": "nlp", "flag": "", "stage": "ft"}
            assert reader.get_details(log.run_id)["status"] == "Completed"
            assert reader.get_file_names(log.run_id) == ["images/roc/1.png", "outputs/model.bin"]
            assert Path(reader.download_file(log.run_id, "outputs/model.bin", tmp_path / "m.bin")).read_bytes() == BLOB
            assert [line.message for line in reader.get_logs(log.run_id)] == ["epoch 1", "bad"]
            assert [r.run_id for r in reader.get_runs("readback")] == ["run_ro"]
            reader.wait_settled(log.run_id)
            assert worker.stop() == 0, worker.output()
        finally:
            worker.kill()
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
        admin.disconnect()
        read_only.disconnect()


_TAG_ENDED_RUN = """
import sys
from producers import Experiment, Run, Workspace

kafka, clickhouse, home, topic, run_id = (a or None for a in sys.argv[1:])
with Workspace(kafka=kafka, clickhouse=clickhouse, home=home, topic=topic, install_signal_handlers=False) as ws:
    run = Run(Experiment(ws, "ended-runs"), run_id)
    assert run.get_status() == "Completed", run.get_status()
    run.tag("best")                                  # Azure ML's sample: tag a fetched, completed run
    run.set_tags({"team": "audio"})                  # a later value wins
    run.add_properties({"picked_by": "sweep-report"})
    run.log("test_acc", 0.93)                        # MLflow takes metrics on a FINISHED run
    run.log("loss", 0.1, step=2)                     # a new process starts its default steps at 0
"""


def test_an_ended_run_takes_tags_properties_and_metrics_from_another_process(backend, monkeypatch, tmp_path):
    # Issue 12, item 6: Run(experiment, id).tag(...) on a completed run raised RunNotActive.
    import subprocess
    import sys

    from producers import Experiment, Run, Workspace

    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = backend.settings
    with Workspace(kafka=s.kafka, clickhouse=s.clickhouse, home=s.home, topic=backend.topic,
                   install_signal_handlers=False) as ws:
        experiment = Experiment(ws, "ended-runs")
        run = experiment.start_logging(tags={"team": "vision"})
        run.log("loss", 1.0)
        run.log("loss", 0.5)
        run.complete()
        assert run.get_status() == "Completed"
    args = [s.kafka or "", s.clickhouse or "", str(s.home), backend.topic or "", run.id]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    done = subprocess.run([sys.executable, "-c", _TAG_ENDED_RUN, *args], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    with Workspace(kafka=s.kafka, clickhouse=s.clickhouse, home=s.home, topic=backend.topic,
                   install_signal_handlers=False) as ws:
        again = Run(Experiment(ws, "ended-runs"), run.id)
        wait_until(lambda: again.get_tags().get("best") is not None and "test_acc" in again.get_metrics(),
                   timeout_s=90, what="the other process's tag and metric")
        assert again.get_tags() == {"team": "audio", "best": ""}
        assert again.get_properties()["picked_by"] == "sweep-report"
        metrics = again.get_metrics()
        assert metrics["test_acc"] == 0.93 and metrics["loss"] == [1.0, 0.5, 0.1]
        assert again.get_status() == "Completed"  # the status stays
