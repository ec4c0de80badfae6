import subprocess
import sys

from store.home import HomeLock, query_address


def test_one_holder_at_a_time_and_holder_info(tmp_path):
    a, b = HomeLock(tmp_path), HomeLock(tmp_path)
    assert a.try_acquire("ingest", query_address="x")
    assert not b.try_acquire("reader")
    assert b.holder()["role"] == "ingest" and b.holder()["query_address"] == "x"
    waits = []
    assert not b.acquire("reader", timeout_s=0.05, poll_s=0.01, on_wait=waits.append)
    assert len(waits) == 1
    a.release()
    assert b.try_acquire("reader")
    b.release()


def test_lock_dies_with_its_process(tmp_path):
    code = ("import os, sys; from store.home import HomeLock; "
            f"HomeLock({str(tmp_path)!r}).try_acquire('ingest'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert HomeLock(tmp_path).try_acquire("reader")


def test_query_address_is_per_home(tmp_path):
    assert query_address(tmp_path / "a") != query_address(tmp_path / "b")
    assert query_address(tmp_path / "a").startswith("\0")
