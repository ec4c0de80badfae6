"""Submitted jobs end to end: real scripts, read back through the store, on the embedded default (spool +
chDB, no server) and on the real stack (Kafka + `runstream ingest` + ClickHouse), the same tests parametrized.

Four scripts, as issue 6 asks: one logs metrics and prints, one raises, one is cancelled by SIGTERM to its
submitter (`runstream submit`), one prints 100,000 lines. Plus `runstream logs --follow` on a running job.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from consumers.testing import wait_until
from producers import Experiment, JobFailed, Run, ScriptRunConfig, Workspace
from producers.jobs import wait_result
from schemas import RunLimits

from pipelines import backend_settings

REPO = Path(__file__).resolve().parents[2]
MAX_FILE = 4096
"""The SDK-side file limit of these tests' workspaces: outputs over it are skipped."""


@dataclass
class Backend:
    name: str
    home: Path
    env: dict[str, str]
    """RUNSTREAM_* settings for `runstream` subprocesses."""
    workspaces: list[Workspace] = field(default_factory=list)

    def workspace(self) -> Workspace:
        ws = Workspace(
            home=self.home, kafka=self.env.get("RUNSTREAM_KAFKA"), clickhouse=self.env.get("RUNSTREAM_CLICKHOUSE"),
            topic=self.env.get("RUNSTREAM_TOPIC"), install_signal_handlers=False,
            limits=RunLimits(max_file_bytes=MAX_FILE))
        self.workspaces.append(ws)
        return ws

    def cli(self, *args: str, **kw) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        env.update(self.env, PYTHONPATH=str(REPO))
        return subprocess.Popen([sys.executable, "-m", "runstream", "-q", *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope="module", params=["embedded", "stack"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    base = tmp_path_factory.mktemp(f"submit-{request.param}")
    with backend_settings(request, base, "rs_submit") as env:
        b = Backend(request.param, base / "home", env)
        yield b
        for ws in b.workspaces:
            ws.close(10)


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the jobs import producers from this checkout
    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


def write(src: Path, name: str, body: str) -> str:
    (src / name).write_text(textwrap.dedent(body))
    return name


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


TRAIN = """
    import logging, os, sys
    from producers import Run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    log = logging.getLogger("train")
    run = Run.get_context()
    for epoch in range(5):
        run.log("loss", 1.0 / (epoch + 1))
        print(f"epoch {epoch}")
        log.info("epoch %d done", epoch)
    run.log_row("summary", best=0.2, epochs=5)
    print("to stderr", file=sys.stderr)
    os.makedirs("outputs/ckpt", exist_ok=True)
    open("outputs/model.txt", "w").write("weights")
    open("outputs/ckpt/step5.bin", "wb").write(bytes(range(256)))
    open("outputs/too_big.bin", "wb").write(b"x" * 10_000)
"""


def test_a_script_that_logs_metrics_and_prints(backend: Backend, src: Path, tmp_path: Path) -> None:
    ws = backend.workspace()
    config = ScriptRunConfig(src, write(src, "train.py", TRAIN), ["--lr", "0.1"])
    run = Experiment(ws, "submit_it").submit(config, tags={"sweep": "lr"})
    details = run.wait_for_completion()
    assert details["status"] == "Completed" and details["kind"] == "submitted" and details["error"] is None
    assert details["tags"] == {"sweep": "lr"}
    assert run.get_metrics() == {"loss": [1.0, 0.5, 1 / 3, 0.25, 0.2], "summary": {"best": [0.2], "epochs": [5.0]}}
    assert run.get_file_names() == ["outputs/ckpt/step5.bin", "outputs/model.txt"]  # too_big.bin skipped
    assert run.download_file("outputs/ckpt/step5.bin", tmp_path / "step5.bin").read_bytes() == bytes(range(256))
    logs = ws.reader().get_logs(run.id)
    assert [l.message for l in logs if l.stream == "stdout"] == [f"epoch {i}" for i in range(5)]
    stderr = [l.message for l in logs if l.stream == "stderr"]
    assert stderr == [f"INFO train epoch {i} done" for i in range(5)] + ["to stderr"]
    records = [l for l in logs if l.stream == "logging"]
    assert [(l.logger, l.level, l.message) for l in records[:5]] == [("train", 20, f"epoch {i} done") for i in range(5)]
    (skip,) = [l for l in records if l.logger == "runstream.submit"]
    assert "outputs/too_big.bin: 10000 bytes" in skip.message and skip.level == 30
    assert [l.time_ms for l in logs] == sorted(l.time_ms for l in logs)

    # `runstream logs` prints the same output, in order.
    proc = backend.cli("logs", run.id)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines() == [l.message for l in logs if l.stream in ("stdout", "stderr")]


def test_a_script_that_raises(backend: Backend, src: Path) -> None:
    ws = backend.workspace()
    run = Experiment(ws, "submit_it").submit(ScriptRunConfig(src, write(src, "bad.py", """
        import sys
        from producers import Run
        Run.get_context().log("before", 1.0)
        print("working")
        def step():
            raise RuntimeError("loss diverged")
        step()
    """)))
    with pytest.raises(JobFailed) as caught:
        run.wait_for_completion()
    assert caught.value.exit_code == 1 and caught.value.run_id == run.id
    details = run.get_details()
    assert details["status"] == "Failed" and details["error"]["code"] == "UserError"
    message = details["error"]["message"]
    assert message.startswith("Traceback (most recent call last):") and message.endswith("RuntimeError: loss diverged")
    assert 'bad.py", line 7, in step' in message and "_job_bootstrap" not in message and len(message) <= 3000
    assert caught.value.error_details == message
    assert run.get_metrics() == {"before": 1.0}
    logs = ws.reader().get_logs(run.id)
    assert [l.message for l in logs if l.stream == "stdout"] == ["working"]
    assert [l.message for l in logs if l.stream == "stderr"][-1] == "RuntimeError: loss diverged"


def test_sigterm_to_the_submitter_stops_the_job_and_cancels_the_run(backend: Backend, src: Path,
                                                                    tmp_path: Path) -> None:
    pid_file = tmp_path / "job.pid"
    write(src, "long.py", f"""
        import os, time
        from producers import Run
        run = Run.get_context()
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        for step in range(3):
            run.log("progress", step)
        print("ready", flush=True)
        time.sleep(120)
        print("never")
    """)
    submitter = backend.cli("submit", "--show-output", "-e", "submit_it", "--source-directory", str(src), "long.py")
    assert submitter.stdout is not None
    assert submitter.stdout.readline() == "ready\n"  # the job runs, streamed live through the submitter
    job_pid = int(pid_file.read_text())
    submitter.send_signal(signal.SIGTERM)
    out, err = submitter.communicate(timeout=60)
    assert submitter.returncode == -signal.SIGTERM, err
    assert "never" not in out
    assert not alive(job_pid)
    run_id = re.search(r"run (\S+) started", err).group(1)  # type: ignore[union-attr]
    ws = backend.workspace()
    reader = ws.reader()
    wait_until(lambda: _status(reader, run_id) == "Canceled", timeout_s=90, what="the run reads Canceled")
    assert reader.get_metrics(run_id) == {"progress": [0.0, 1.0, 2.0]}
    assert [l.message for l in reader.get_logs(run_id)] == ["ready"]


def _status(reader, run_id: str) -> str | None:
    from producers import RunNotFound

    try:
        return reader.get_status(run_id)
    except RunNotFound:
        return None


def test_a_script_that_prints_100k_lines(backend: Backend, src: Path) -> None:
    ws = backend.workspace()
    config = ScriptRunConfig(src, write(src, "chatty.py", """
        for i in range(100_000):
            print(f"line {i}")
    """))
    run = Experiment(ws, "submit_it").submit(config)
    result = wait_result(run)
    assert result.status == "Completed" and result.dropped_lines == 0
    # --follow: the submitter has ended the run, but ingest may still be behind; follow prints until
    # the final status is in and every line sent before it is visible.
    proc = backend.cli("logs", run.id, "--follow")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 100_000 and lines == [f"line {i}" for i in range(100_000)]


def test_logs_follow_prints_a_running_job_until_it_ends(backend: Backend, src: Path) -> None:
    ws = backend.workspace()
    run = Experiment(ws, "submit_it").submit(ScriptRunConfig(src, write(src, "slow.py", """
        import sys, time
        from producers import Run
        Run.get_context()
        for i in range(6):
            print(f"tick {i}", flush=True)
            time.sleep(0.5)
    """)))
    reader = ws.reader()
    wait_until(lambda: _status(reader, run.id), timeout_s=90, what="the run is readable")
    follower = backend.cli("logs", run.id, "--follow", "--interval", "0.2")
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert out.splitlines() == [f"tick {i}" for i in range(6)]
    assert wait_result(run).status == "Completed"
    assert reader.get_status(run.id) == "Completed"


def test_logs_of_an_unknown_run_fail(backend: Backend) -> None:
    proc = backend.cli("logs", "no_such_run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "no run 'no_such_run'" in err and out == ""
