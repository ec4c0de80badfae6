"""Process hooks, in real child processes: exit flush, SIGTERM (chained), multiprocessing children, get_context."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from schemas import RunStarted, RunStatusChanged, ScalarBatch, decode
from schemas.spool import list_segments, read_segment

REPO = Path(__file__).resolve().parents[2]


def run_script(tmp_path: Path, body: str, *, wait: bool = True) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update(PYTHONPATH=str(REPO), RUNSTREAM_HOME=str(tmp_path / "home"))
    if not wait:
        return subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, text=True, capture_output=True,
                          timeout=120, check=False)


def spool_events(tmp_path: Path) -> list:
    return [decode(r.value) for s in list_segments(tmp_path / "home" / "spool") for r in read_segment(s)]


def names(events: list) -> Counter:
    return Counter(b.names[i] for b in events if isinstance(b, ScalarBatch) for i in b.point_columns()[0])


def test_exit_delivers_what_is_buffered(tmp_path: Path) -> None:
    proc = run_script(tmp_path, """
        from producers import Workspace, Experiment
        run = Experiment(Workspace(linger_ms=60_000), "e").start_logging()
        for i in range(1000):
            run.log("x", float(i))
        # no complete(), no flush(): the interpreter exit delivers
    """)
    assert proc.returncode == 0, proc.stderr
    events = spool_events(tmp_path)
    assert names(events) == {"x": 1000}
    assert not [e for e in events if isinstance(e, RunStatusChanged)]  # start_logging runs are not ended for you


def test_get_context_runs_complete_or_fail_at_exit(tmp_path: Path) -> None:
    ok = run_script(tmp_path, """
        from producers import Run
        Run.get_context().log("x", 1.0)
    """)
    assert ok.returncode == 0, ok.stderr
    events = spool_events(tmp_path)
    assert events[0].experiment == "train" and [e.status for e in events if isinstance(e, RunStatusChanged)] == ["Completed"]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = run_script(bad_dir, """
        from producers import Run
        Run.get_context().log("x", 1.0)
        raise SystemError("diverged")
    """)
    assert bad.returncode == 1 and "SystemError: diverged" in bad.stderr
    status = [e for e in spool_events(bad_dir) if isinstance(e, RunStatusChanged)]
    assert len(status) == 1 and status[-1].status == "Failed" and "SystemError: diverged" in status[-1].error_details


def test_sigterm_flushes_then_terminates(tmp_path: Path) -> None:
    proc = run_script(tmp_path, """
        import sys, time
        from producers import Workspace, Experiment
        run = Experiment(Workspace(linger_ms=60_000), "e").start_logging()
        for i in range(500):
            run.log("x", float(i))
        run.log("tail", 0.0)        # before "ready": a signal arriving at once still finds a tail point
        print("ready", flush=True)
        i = 1
        while True:                 # keep logging until the signal arrives
            run.log("tail", float(i)); i += 1
            if i % 1000 == 0:
                time.sleep(0.001)
    """, wait=False)
    assert isinstance(proc, subprocess.Popen)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err  # the default action still happens, after the flush
    events = spool_events(tmp_path)
    counted = names(events)
    assert counted["x"] == 500 and counted["tail"] > 0
    tail_steps = [s for b in events if isinstance(b, ScalarBatch) for i, s in zip(*b.point_columns()[:2])
                  if b.names[i] == "tail"]
    assert tail_steps == list(range(len(tail_steps)))  # a prefix, in order, nothing missing in between


def test_sigterm_chains_to_the_previous_handler(tmp_path: Path) -> None:
    proc = run_script(tmp_path, """
        import os, signal, sys
        def mine(signum, frame):
            print("previous handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, mine)
        from producers import Workspace, Experiment
        run = Experiment(Workspace(linger_ms=60_000), "e").start_logging()
        run.log("x", 1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        import time
        time.sleep(30)  # the handler runs here
        print("not reached", flush=True)
    """)
    assert proc.returncode == 3 and "previous handler ran" in proc.stdout, proc.stderr
    assert names(spool_events(tmp_path)) == {"x": 1}


def test_a_sigterm_during_the_sigterm_flush_does_not_deadlock_it(tmp_path: Path) -> None:
    # A submitted job gets one SIGTERM per thread of its dying submitter (PR_SET_PDEATHSIG fires each time
    # the child is handed to the next thread). Here the second one comes while the handler's flush holds
    # the uploads lock, which a re-entered flush would wait for forever.
    proc = run_script(tmp_path, """
        import os, signal, time
        from producers import Workspace, Experiment
        from producers.uploads import Uploader
        run = Experiment(Workspace(linger_ms=60_000), "e").start_logging()
        run.log("x", 1.0)
        wait = Uploader.wait

        def wait_with_a_second_sigterm(self, key=None, timeout=None):
            with self._lock:
                os.kill(os.getpid(), signal.SIGTERM)  # its handler runs right here, under the lock
                time.sleep(0.2)
            return wait(self, key, timeout)

        Uploader.wait = wait_with_a_second_sigterm  # from now on only the SIGTERM flush calls it
        print("ready", flush=True)
        time.sleep(60)
        print("not reached", flush=True)
    """, wait=False)
    assert isinstance(proc, subprocess.Popen)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=50)  # the sleep ends by itself at 60 s
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the SIGTERM flush hung on a second SIGTERM") from None
    assert proc.returncode == -signal.SIGTERM and "not reached" not in out, err
    assert names(spool_events(tmp_path)) == {"x": 1}


def test_multiprocessing_children_deliver_their_own_points(tmp_path: Path) -> None:
    proc = run_script(tmp_path, """
        import multiprocessing as mp
        from producers import Run

        def worker(k):
            run = Run.get_context()          # the parent's run, a writer of its own
            for i in range(100):
                run.log(f"worker{k}", float(i))
            # no flush: the child exits through os._exit, our hook still delivers

        if __name__ == "__main__":
            run = Run.get_context()
            run.log("parent", 1.0)
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=worker, args=(k,)) for k in range(3)]
            for p in procs: p.start()
            for p in procs: p.join()
            assert all(p.exitcode == 0 for p in procs)
    """)
    assert proc.returncode == 0, proc.stderr
    events = spool_events(tmp_path)
    assert names(events) == {"parent": 1, "worker0": 100, "worker1": 100, "worker2": 100}
    assert len({e.writer_id for e in events}) == 4
    assert len([e for e in events if isinstance(e, RunStarted)]) == 1
    assert [e.status for e in events if isinstance(e, RunStatusChanged)] == ["Completed"]  # only the parent ends it
