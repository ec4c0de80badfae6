"""producers.jobs with real child processes; the submitter's own events go to an in-memory transport."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from producers import ConfigurationError, Experiment, InvalidValueType, JobEnvironment, JobFailed, Run
from producers import ScriptRunConfig, Workspace, WorkspaceSettings
from producers.jobs import JobResult, exit_code_of, job_of, wait_for_completion, wait_result
from producers.jobs.environment import write_settings
from producers.testing import InMemoryTransport
from schemas import FileChunk, LogBatch, LogLine, RunLimits, RunStarted, RunStatusChanged

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


def script(src: Path, body: str, name: str = "job.py") -> str:
    (src / name).write_text(textwrap.dedent(body))
    return name


def start(ws: Workspace, src: Path, body: str, *args: str, tags=None, stop_grace_s: float | None = None) -> Run:
    run = Experiment(ws, "jobs").submit(ScriptRunConfig(src, script(src, body), list(args)), tags)
    job = job_of(run.id)
    if stop_grace_s is not None and job is not None:
        job.stop_grace_s = stop_grace_s
    return run


def alive(pid: int, wait_s: float = 5.0) -> bool:
    """Whether ``pid`` still runs after up to ``wait_s`` (a zombie nobody reaped yet counts as gone)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def output(transport: InMemoryTransport, run: Run, stream: str | None = None) -> list[LogLine]:
    lines = [line for batch in transport.events(LogBatch, run_id=run.id) for line in batch.lines]
    return [line for line in lines if stream is None or line.stream == stream]


def final_status(transport: InMemoryTransport, run: Run) -> RunStatusChanged:
    return transport.events(RunStatusChanged, run_id=run.id)[-1]


# -- configuration ------------------------------------------------------------------------------------


def test_script_run_config_takes_azure_style_arguments(src: Path) -> None:
    config = ScriptRunConfig(src, "train.py", ["--lr", 0.1, 3], {"SEED": "1"})
    assert config.arguments == ["--lr", "0.1", "3"]
    assert config.job_environment == JobEnvironment(environment_variables={"SEED": "1"})
    assert ScriptRunConfig(source_directory=".", script="t.py").job_environment == JobEnvironment()
    with pytest.raises(InvalidValueType):
        ScriptRunConfig(src, "t.py", "--lr 0.1")
    with pytest.raises(InvalidValueType):
        ScriptRunConfig(src, "t.py", environment=["A=1"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        JobEnvironment(environment_variables={"A=B": "1"})
    with pytest.raises(ConfigurationError):
        JobEnvironment(environment_variables={"A": 1})  # type: ignore[dict-item]


def test_a_missing_folder_or_script_is_refused_before_anything_is_logged(
        ws: Workspace, transport: InMemoryTransport, src: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a folder"):
        Experiment(ws, "jobs").submit(ScriptRunConfig(src / "nope", "t.py"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        Experiment(ws, "jobs").submit(ScriptRunConfig(src, "t.py"))
    with pytest.raises(InvalidValueType):
        Experiment(ws, "jobs").submit("train.py")  # type: ignore[arg-type]
    ws.flush(5)
    assert transport.events(RunStarted) == []


def test_settings_travel_to_the_job_in_a_private_file(tmp_path: Path) -> None:
    settings = WorkspaceSettings(home=tmp_path / "h", kafka="k1:9092,k2:9092", topic="t.x", linger_ms=7,
                                 limits=RunLimits(max_file_bytes=123), kafka_options={"security_protocol": "SSL"})
    path = tmp_path / "runstream.json"
    write_settings(settings, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert WorkspaceSettings.from_file(path, env={}) == settings
    with pytest.raises(ConfigurationError, match="kafka_options"):
        write_settings(WorkspaceSettings(kafka_options={"ssl_context": object()}), tmp_path / "x")


def test_exit_codes_as_a_shell_reports_them() -> None:
    assert exit_code_of(JobResult("Completed", 0, None)) == 0
    assert exit_code_of(JobResult("Failed", 3, "x")) == 3
    assert exit_code_of(JobResult("Canceled", -15, None)) == 143
    assert exit_code_of(JobResult("Failed", None, "could not start")) == 1
    assert exit_code_of(JobResult("Canceled", None, None)) == 130


# -- running ----------------------------------------------------------------------------------------


def test_a_job_runs_in_its_folder_with_its_context_and_output_is_captured_in_order(
        ws: Workspace, transport: InMemoryTransport, src: Path) -> None:
    run = Experiment(ws, "jobs").submit(
        ScriptRunConfig(src, script(src, """
            import os, sys, time
            for _ in range(6000):  # until the test says go, after submit() returned (at most 60 s)
                if os.path.exists("go"):
                    break
                time.sleep(0.01)
            else:
                sys.exit(3)
            from producers import Run
            run = Run.get_context()
            print("cwd", os.getcwd(), "run", run.id, run.experiment.name, run.kind, sys.argv[1:])
            print("env", os.environ["SEED"], os.environ["PYTHONUNBUFFERED"], repr(os.environ.get("RUNSTREAM_PARENT_RUN_ID")))
            for i in range(5):
                print(f"out {i}")
                print(f"err {i}", file=sys.stderr)
            run.log("loss", 0.25)
            sys.stdout.write("no newline at the end")
        """), ["--lr", "0.1"], {"SEED": "7"}),
        {"sweep": "a"})
    (src / "go").touch()  # submit() returned while the job still waits for this: it does not wait for the job
    result = wait_result(run)
    assert result == JobResult("Completed", 0, None)
    (started,) = transport.events(RunStarted, run_id=run.id)
    assert started.kind == "submitted" and started.tags == {"sweep": "a"}
    out = [line.message for line in output(transport, run, "stdout")]
    assert out == [f"cwd {src} run {run.id} jobs submitted ['--lr', '0.1']", "env 7 1 ''",
                   *(f"out {i}" for i in range(5)), "no newline at the end"]
    assert [line.message for line in output(transport, run, "stderr")] == [f"err {i}" for i in range(5)]
    times = [line.time_ms for line in output(transport, run)]
    assert times == sorted(times)
    assert {(line.level, line.logger) for line in output(transport, run, "stderr")} == {(30, "")}
    assert final_status(transport, run).status == "Completed"
    assert job_of(run.id) is None


def test_long_lines_are_split_and_binary_output_kept(tmp_path: Path, transport: InMemoryTransport, src: Path) -> None:
    ws = Workspace(home=tmp_path / "home", transport=transport, install_signal_handlers=False, linger_ms=5,
                   limits=RunLimits(max_log_line_length=100))
    try:
        run = start(ws, src, """
            import sys
            print("x" * 250)
            sys.stdout.flush()
            sys.stdout.buffer.write(b"bin\\xff\\x00\\xfe\\n")
        """)
        assert wait_result(run).status == "Completed"
        assert [line.message for line in output(transport, run)] == ["x" * 100, "x" * 100, "x" * 50,
                                                                     "bin\ufffd\x00\ufffd"]
    finally:
        ws.close(5)


def test_an_uncaught_exception_fails_the_run_with_its_traceback(
        ws: Workspace, transport: InMemoryTransport, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = start(ws, src, """
        import sys
        print("noise on stderr", file=sys.stderr)
        def train():
            raise ValueError("loss is NaN")
        train()
    """)
    monkeypatch.setattr(Run, "get_details", lambda self: {"runId": self.id, "status": "Failed"})
    with pytest.raises(JobFailed) as caught:
        run.wait_for_completion()
    error = caught.value
    assert error.run_id == run.id and error.exit_code == 1
    assert error.error_details is not None
    assert error.error_details.startswith("Traceback (most recent call last):")
    assert error.error_details.endswith("ValueError: loss is NaN") and "noise" not in error.error_details
    assert "loss is NaN" in str(error)
    stored = final_status(transport, run)
    assert stored.status == "Failed" and stored.error_details == error.error_details
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_a_non_zero_exit_fails_with_the_end_of_stderr(ws: Workspace, transport: InMemoryTransport, src: Path) -> None:
    run = start(ws, src, """
        import sys
        for i in range(2000):
            print(f"complaint {i}", file=sys.stderr)
        sys.exit(4)
    """)
    result = wait_result(run)
    assert result.status == "Failed" and result.exit_code == 4
    details = final_status(transport, run).error_details or ""
    assert details.startswith("job.py exited with code 4; the end of its stderr:\n...")
    assert details.endswith("complaint 1999") and len(details) <= 3000
    assert result.error_details == details


def test_a_killed_job_fails_naming_the_signal(ws: Workspace, transport: InMemoryTransport, src: Path) -> None:
    run = start(ws, src, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    result = wait_result(run)
    assert (result.status, result.exit_code, exit_code_of(result)) == ("Failed", -9, 137)
    assert final_status(transport, run).error_details == "job.py killed by SIGKILL"


def test_a_job_that_cannot_start_is_a_failed_run(ws: Workspace, transport: InMemoryTransport, src: Path) -> None:
    config = ScriptRunConfig(src, script(src, "pass"),
                             environment=JobEnvironment(interpreter_path=str(src / "no-python")))
    run = Experiment(ws, "jobs").submit(config)
    result = wait_result(run)
    assert result.status == "Failed" and result.exit_code is None
    assert "could not start" in (final_status(transport, run).error_details or "")


def test_outputs_are_uploaded_and_what_is_too_big_is_skipped_with_a_warning(
        tmp_path: Path, transport: InMemoryTransport, src: Path, caplog: pytest.LogCaptureFixture) -> None:
    ws = Workspace(home=tmp_path / "home", transport=transport, install_signal_handlers=False, linger_ms=5,
                   limits=RunLimits(max_file_bytes=1000))
    try:
        run = start(ws, src, """
            import os
            os.makedirs("outputs/sub")
            open("outputs/model.txt", "w").write("weights")
            open("outputs/sub/notes.txt", "w").write("n")
            open("outputs/big.bin", "wb").write(b"x" * 5000)
        """)
        result = wait_result(run)
        assert result.status == "Completed"
        assert sorted({c.path for c in transport.events(FileChunk, run_id=run.id)}) == [
            "outputs/model.txt", "outputs/sub/notes.txt"]
        assert len(result.skipped_outputs) == 1 and "outputs/big.bin: 5000 bytes" in result.skipped_outputs[0]
        (warning,) = [line for line in output(transport, run) if line.stream == "logging"]
        assert warning.logger == "runstream.submit" and warning.level == 30 and "big.bin" in warning.message
        assert "1 file(s) of ./outputs were not uploaded" in caplog.text
    finally:
        ws.close(5)


def test_show_output_replays_what_came_before_then_streams(ws: Workspace, src: Path) -> None:
    run = start(ws, src, """
        import sys, time
        print("early")
        print("early err", file=sys.stderr)
        time.sleep(0.5)
        print("late")
    """)
    time.sleep(0.3)
    out, err = io.StringIO(), io.StringIO()
    assert wait_result(run, show_output=True, out=out, err=err).status == "Completed"
    assert out.getvalue() == "early\nlate\n" and err.getvalue() == "early err\n"


def test_stopping_a_job_kills_its_process_group_and_cancels_the_run(
        ws: Workspace, transport: InMemoryTransport, src: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    run = start(ws, src, f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a stubborn job: only SIGKILL stops it
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("ready", flush=True)
        time.sleep(60)
    """, stop_grace_s=0.5)
    job = job_of(run.id)
    assert job is not None
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.request_stop("test")
    assert job.wait(30)
    assert job.result is not None and job.result.status == "Canceled" and job.result.exit_code == -9
    assert final_status(transport, run).status == "Canceled"
    assert not any(alive(pid) for pid in map(int, pids.read_text().split()))
    job.request_stop("again")  # after the end: nothing to do


def test_processes_the_script_leaves_behind_are_stopped_when_it_ends(
        ws: Workspace, src: Path, tmp_path: Path) -> None:
    pid_file, outlived = tmp_path / "leftover", tmp_path / "outlived"
    run = start(ws, src, f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; print('bg', flush=True); time.sleep(60); "
                                  "open({str(outlived)!r}, 'w').close()"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
    """)
    assert wait_result(run).status == "Completed"
    assert not alive(int(pid_file.read_text()))
    assert not outlived.exists()  # stopped when the script ended, not waited for


def test_the_job_dies_with_a_submitter_that_is_killed(tmp_path: Path, src: Path) -> None:
    pid_file = tmp_path / "job.pid"
    script(src, f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)", "sleeper.py")
    submitter = tmp_path / "submitter.py"
    submitter.write_text(textwrap.dedent(f"""
        import os, signal, time
        from producers import Experiment, ScriptRunConfig, Workspace
        run = Experiment(Workspace(home={str(tmp_path / 'home')!r}), "jobs").submit(ScriptRunConfig({str(src)!r}, "sleeper.py"))
        while not os.path.exists({str(pid_file)!r}):
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    proc = subprocess.run([sys.executable, str(submitter)], env=env, timeout=60, check=False)
    assert proc.returncode == -9
    job_pid = int(pid_file.read_text())
    if alive(job_pid, 10):
        os.kill(job_pid, signal.SIGKILL)
        pytest.fail("the job outlived its SIGKILLed submitter")


def test_wait_result_needs_a_job_of_this_process(ws: Workspace) -> None:
    from producers import SdkError

    run = Experiment(ws, "jobs").start_logging()
    with pytest.raises(SdkError, match="not submitted by this process"):
        wait_result(run)


def _spool_statuses(home: Path) -> list[str]:
    from schemas import decode
    from schemas.spool import list_segments, read_segment

    return [e.status for s in list_segments(home / "spool") for r in read_segment(s)
            for e in [decode(r.value)] if isinstance(e, RunStatusChanged)]


def _submitter_env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}, "PYTHONPATH": str(REPO)}


def test_a_submitter_that_reaches_its_end_waits_for_its_job(tmp_path: Path, src: Path) -> None:
    script(src, "import time; time.sleep(1); print('done')", "job.py")
    submitter = tmp_path / "submitter.py"
    submitter.write_text(textwrap.dedent(f"""
        from producers import Experiment, ScriptRunConfig, Workspace
        Experiment(Workspace(home={str(tmp_path / 'home')!r}), "jobs").submit(ScriptRunConfig({str(src)!r}, "job.py"))
        print("submitted", flush=True)
    """))
    proc = subprocess.run([sys.executable, str(submitter)], env=_submitter_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout == "submitted\n"
    assert "waiting for submitted run" in proc.stderr
    assert _spool_statuses(tmp_path / "home") == ["Completed"]


def test_ctrl_c_of_runstream_submit_cancels_the_run_and_exits_130(tmp_path: Path, src: Path) -> None:
    script(src, "import time; print('ready', flush=True); time.sleep(60)", "job.py")
    env = {**_submitter_env(), "RUNSTREAM_HOME": str(tmp_path / "home")}
    # A shell's background job ignores SIGINT; the submitter must be able to get it.
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
                             "signal.default_int_handler); from runstream.cli import main; sys.exit(main())",
                             "submit", "-e", "jobs", "--show-output", "--source-directory", str(src), "job.py"],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Canceled (interrupted)" in err
    assert _spool_statuses(tmp_path / "home") == ["Canceled"]


def test_runstream_submit_exits_with_the_scripts_exit_code(tmp_path: Path, src: Path) -> None:
    script(src, "import sys; print('bad input', file=sys.stderr); sys.exit(3)", "job.py")
    env = {**_submitter_env(), "RUNSTREAM_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "runstream", "submit", "job.py", "-e", "jobs", "--tag", "k=v"],
                          cwd=src, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    assert "job.py exited with code 3; the end of its stderr:\nbad input" in proc.stderr
    assert "Failed (exit code 3)" in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "runstream", "submit", "nope.py", "-e", "jobs"], cwd=src,
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_experiment = subprocess.run([sys.executable, "-m", "runstream", "submit", "job.py"], cwd=src, env=env,
                                   capture_output=True, text=True, timeout=60, check=False)
    assert no_experiment.returncode == 2 and "--experiment NAME is required" in no_experiment.stderr


def test_waiting_on_a_run_submitted_elsewhere_polls_the_store(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = iter(["Running", "Running", "Failed"])
    logs = [LogLine(1, "stdout", "", 20, "first")]

    class Reader:
        def get_status(self, run_id: str) -> str:
            return next(statuses)

        def get_logs(self, run_id: str) -> list[LogLine]:
            logs.append(LogLine(len(logs) + 1, "stdout", "", 20, f"line {len(logs)}"))
            return list(logs)

        def get_details(self, run_id: str) -> dict:
            return {"runId": run_id, "status": "Failed", "error": {"code": "UserError", "message": "boom"}}

    monkeypatch.setattr(ws, "reader", lambda: Reader())
    run = Run._attach(Experiment(ws, "jobs"), "elsewhere_1")
    out = io.StringIO()
    details = wait_for_completion(run, show_output=True, raise_on_error=False, out=out, poll_s=0.01)
    assert details["status"] == "Failed"
    assert out.getvalue().splitlines() == ["first", "line 1", "line 2", "line 3", "line 4"]
    statuses = iter(["Failed"])
    with pytest.raises(JobFailed, match="boom") as caught:
        wait_for_completion(run, show_output=False, raise_on_error=True, poll_s=0.01)
    assert caught.value.exit_code is None and caught.value.error_details == "boom"
