"""The embedded default: `runstream ingest` on the spool into chDB, SIGKILLed mid-way and restarted;
readers ask the running ingest over its socket, or ingest the spool themselves when nothing runs."""

from __future__ import annotations

import signal

import schemas
from consumers.ownership import HomeLock
from consumers.testing import IngestProcess, wait_until
from producers.reading import ReadSettings, RunReader
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
        reader = RunReader(ReadSettings(home=home, visible_timeout_s=30))
        for r in range(RUNS):
            reader.wait_visible(f"emb_{r}", f"wemb_{r}", 2 + BATCHES)
            assert reader.get_metrics(f"emb_{r}")["loss"] == [float(s) for s in range(BATCHES * 100)]
            assert reader.get_status(f"emb_{r}") == "Completed"
        assert second.stop(timeout_s=30) == 0, second.output()
    finally:
        second.kill()
    assert "SIGTERM received" in second.output()


def test_reader_ingests_the_spool_itself_when_nothing_runs(tmp_path):
    home = tmp_path / "home"
    _write_spool(home / "spool", runs=[0])
    reader = RunReader(ReadSettings(home=home))
    assert len(reader.get_metrics("emb_0")["loss"]) == BATCHES * 100
    assert not list_segments(home / "spool")
    _write_spool(home / "spool", runs=[1])  # more arrives later: the next read picks it up
    assert reader.get_status("emb_1") == "Completed"
