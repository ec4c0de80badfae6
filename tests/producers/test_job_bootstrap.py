"""producers.job_bootstrap, in real child processes: the script runs as `python SCRIPT` would, logging
records ship to the submitted run, basicConfig and lastResort keep working, tracebacks start in the script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from schemas import LogBatch, decode
from schemas.spool import list_segments, read_segment

REPO = Path(__file__).resolve().parents[2]


def bootstrap(tmp_path: Path, body: str, *args: str, error_file: bool = True) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "src" / "job.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update(PYTHONPATH=str(REPO), RUNSTREAM_HOME=str(tmp_path / "home"), RUNSTREAM_RUN_ID="job_1",
               RUNSTREAM_EXPERIMENT="boot", RUNSTREAM_JOB_SUBMITTER_PID=str(os.getpid()))
    if error_file:
        env["RUNSTREAM_JOB_ERROR_FILE"] = str(tmp_path / "error.txt")
    return subprocess.run([sys.executable, "-m", "producers.job_bootstrap", str(script), *args], cwd=tmp_path,
                          env=env, text=True, capture_output=True, timeout=60, check=False)


def logged(tmp_path: Path) -> list:
    return [line for s in list_segments(tmp_path / "home" / "spool") for r in read_segment(s)
            for e in [decode(r.value)] if isinstance(e, LogBatch) for line in e.lines]


def test_the_script_runs_as_main_with_its_argv_path_and_file(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, """
        import os, pickle, sys
        class Point:
            pass
        assert __name__ == "__main__" and sys.modules["__main__"].__dict__ is globals()
        print(sys.argv, os.path.basename(__file__), sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
        print(type(pickle.loads(pickle.dumps(Point()))).__name__)
        print("env leaks:", [k for k in os.environ if k.startswith("RUNSTREAM_JOB_")])
    """, "--lr", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"[{str(tmp_path / 'src' / 'job.py')!r}, '--lr', '0.1'] job.py True",
                                        "Point", "env leaks: []"]
    assert proc.stderr == ""


def test_logging_records_ship_and_basic_config_still_configures(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s|%(name)s|%(message)s")
        logging.getLogger("train").info("epoch %d", 1)
        logging.getLogger("train").debug("not at INFO")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.exception("step failed")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[:2] == ["INFO|train|epoch 1", "ERROR|root|step failed"]
    lines = logged(tmp_path)
    assert [(l.stream, l.logger, l.level, l.message) for l in lines] == [
        ("logging", "train", 20, "epoch 1"), ("logging", "root", 40, "step failed")]
    assert "ZeroDivisionError" in (lines[1].exc_text or "")


def test_unconfigured_logging_still_prints_warnings(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, """
        import logging
        logging.getLogger("x").warning("careful")
        logging.getLogger("x").info("dropped: root is at WARNING")
    """)
    assert proc.returncode == 0 and proc.stderr == "careful\n"
    assert [(l.logger, l.message) for l in logged(tmp_path)] == [("x", "careful")]


def test_sys_exit_codes_pass_through(tmp_path: Path) -> None:
    assert bootstrap(tmp_path, "import sys; sys.exit(3)").returncode == 3
    assert not (tmp_path / "error.txt").exists()


def test_an_uncaught_exception_exits_1_with_a_traceback_that_starts_in_the_script(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, """
        def train():
            raise RuntimeError("diverged")
        train()
    """)
    assert proc.returncode == 1
    assert "_job_bootstrap" not in proc.stderr
    expected = proc.stderr.strip()
    assert expected.startswith("Traceback (most recent call last):\n  File \"" + str(tmp_path / "src" / "job.py"))
    assert expected.endswith("RuntimeError: diverged")
    assert (tmp_path / "error.txt").read_text().strip() == expected


def test_a_syntax_error_is_reported_like_python_does(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, "def broken(:\n")
    assert proc.returncode == 1 and "SyntaxError" in proc.stderr and "_job_bootstrap" not in proc.stderr
    assert "job.py" in (tmp_path / "error.txt").read_text()


def test_without_a_script_it_says_how_to_use_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "producers.job_bootstrap"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert proc.returncode == 2 and "usage" in proc.stderr
