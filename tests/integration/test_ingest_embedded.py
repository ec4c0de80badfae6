"""The embedded default: `runstream ingest` on the spool into chDB, SIGKILLed mid-way and restarted;
readers ask the running ingest over the home's socket, or start an owner for the home when nothing runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import schemas
from store.home import HomeLock
from consumers.testing import wait_until
from runstream.testing import IngestProcess
from producers.reading import open_reader
from schemas.settings import WorkspaceSettings
from schemas import RunStarted, RunStatusChanged, ScalarBatch
from schemas.spool import SpoolWriter, list_segments

RUNS, BATCHES = 4, 250  # 100 points per batch -> 100,000 points, 1,000 flushes of 100 rows


def _write_spool(spool, runs=range(RUNS)):
    for r in runs:
        run_id, writer_id = f"emb_{r}", f"wemb_{r}"
        w = SpoolWriter(spool, writer_id, segment_bytes=16 * 1024)
        env = lambda seq: dict(writer_id=writer_id, seq=seq, run_id=run_id, experiment="emb", created_ms=seq)  # noqa
        w.append(run_id.encode(), schemas.encode(RunStarted(**env(1))))
        for b in range(BATCHES):
            steps = list(range(b * 100, b * 100 + 100))
            w.append(run_id.encode(), schemas.encode(ScalarBatch(
                **env(2 + b), names=["loss"], descriptions=[""], name_idx=[0] * 100, steps=steps, times_ms=steps,
                values=[float(s) for s in steps])))
        w.append(run_id.encode(), schemas.encode(RunStatusChanged(**env(2 + BATCHES), status="Completed")))
        w.close()


def test_sigkill_mid_ingest_then_restart_exactly_once(tmp_path):
    home = tmp_path / "home"
    _write_spool(home / "spool")
    args = ["--home", str(home), "--flush-rows", "100", "--flush-interval", "0.05"]
    first = IngestProcess(args, tmp_path / "first.log").start()
    try:
        # Poll tightly: the kill must land between the first commit and the last one.
        first_commit = lambda: (home / "ingest" / "spool-checkpoint.json").exists() or first.proc.poll() is not None  # noqa
        try:
            wait_until(first_commit, timeout_s=120, interval_s=0.005, what="a first commit")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{first.output()[-3000:]}") from None
        assert first.proc.poll() is None, f"the first worker exited on its own:\n{first.output()[-3000:]}"
    finally:
        first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    assert list_segments(home / "spool"), "the first worker finished before it was killed: give it more work"
    second = IngestProcess(args, tmp_path / "second.log").start()
    try:
        wait_until(lambda: not list_segments(home / "spool"), timeout_s=90, what="the spool to be ingested")
        holder = HomeLock(home).holder()
        assert holder["role"] == "ingest" and holder["pid"] == second.proc.pid
        # While it runs, it owns chDB: this reader's queries go over its socket.
        reader = open_reader(WorkspaceSettings(home=home, visible_timeout_s=30))
        for r in range(RUNS):
            reader.wait_visible(f"emb_{r}", f"wemb_{r}", 2 + BATCHES)
            assert reader.get_metrics(f"emb_{r}")["loss"] == [float(s) for s in range(BATCHES * 100)]
            assert reader.get_status(f"emb_{r}") == "Completed"
        assert second.stop(timeout_s=30) == 0, second.output()
    finally:
        second.kill()
    assert "SIGTERM received" in second.output()


def test_a_reader_starts_an_owner_when_nothing_runs_and_a_worker_takes_over(tmp_path):
    home = tmp_path / "home"
    _write_spool(home / "spool", runs=[0])
    reader = open_reader(WorkspaceSettings(home=home, owner_idle_s=60))
    assert len(reader.get_metrics("emb_0")["loss"]) == BATCHES * 100  # the read waited for the spool
    assert not list_segments(home / "spool")
    owner = HomeLock(home).holder()
    assert owner["role"] == "on-demand" and owner["pid"] != os.getpid()
    _write_spool(home / "spool", runs=[1])  # more arrives later: the next read sees it too
    assert reader.get_status("emb_1") == "Completed"
    # `runstream ingest` wants the home: the reader-started owner steps down for it.
    worker = IngestProcess(["--home", str(home)], tmp_path / "worker.log").start()
    try:
        wait_until(lambda: (HomeLock(home).holder() or {}).get("pid") == worker.proc.pid, timeout_s=60,
                   what="the worker to own the home")
        assert "taking" in worker.output() or "reader-started owner" in worker.output()
        assert reader.get_status("emb_0") == "Completed"  # now over the worker's socket
        assert worker.stop(timeout_s=30) == 0, worker.output()
    finally:
        worker.kill()


def test_an_owner_started_by_a_reader_leaves_when_idle(tmp_path):
    home = tmp_path / "home"
    _write_spool(home / "spool", runs=[0])
    reader = open_reader(WorkspaceSettings(home=home, owner_idle_s=1))
    assert reader.get_status("emb_0") == "Completed"
    pid = HomeLock(home).holder()["pid"]
    wait_until(lambda: HomeLock(home).try_acquire("test"), timeout_s=30, what="the idle owner to free the home")
    wait_until(lambda: not _running(pid), timeout_s=30, what="the idle owner to exit")


def _running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # our child until we reap it
