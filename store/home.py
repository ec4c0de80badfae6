"""Who owns a runstream home: its spool's read position and its chDB files.

chDB is an in-process engine: one process at a time may open ``$RUNSTREAM_HOME/chdb``,
and only one process may consume ``$RUNSTREAM_HOME/spool`` (it keeps the
checkpoint). Both are guarded by one ``flock`` on ``$RUNSTREAM_HOME/owner.lock``,
held by the home's *owner* for its whole life: ``runstream ingest``,
``runstream server``, or an owner a reader started on demand. While it owns
chDB the owner answers other processes' reads on the home's query socket
(:mod:`store.query_socket`), whose address it writes to ``owner.json`` with its
pid and role.

The lock dies with its process (SIGKILL included), so a crash never leaves a
home locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["HomeLock", "query_address"]


def query_address(home: Path) -> str:
    """The abstract Unix-socket name (Linux) an owning ingest serves queries on, one per home."""
    digest = hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:32]
    return f"\0runstream-query-{digest}"


class HomeLock:
    """The ``owner.lock`` flock of one home, plus ``owner.json`` describing the holder."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / "owner.lock"
        self.info_path = self.home / "owner.json"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def try_acquire(self, role: str, **info: Any) -> bool:
        """Take the lock without waiting; on success record ``role``, pid and ``info`` in ``owner.json``."""
        if self._fd is not None:
            return True
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        record = {"role": role, "pid": os.getpid(), "since_ms": int(time.time() * 1000), **info}
        tmp = self.info_path.with_name(f"owner.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.info_path)
        return True

    def acquire(self, role: str, *, timeout_s: float, poll_s: float = 0.05,
                on_wait: Callable[[dict[str, Any] | None], None] | None = None,
                stop: threading.Event | None = None,
                monotonic: Callable[[], float] = time.monotonic, **info: Any) -> bool:
        """Wait up to ``timeout_s`` (or until ``stop`` is set) for the lock; ``on_wait(holder)`` is called
        once if it has to wait."""
        deadline = monotonic() + timeout_s
        waited = False
        stop = stop if stop is not None else threading.Event()
        while True:
            if self.try_acquire(role, **info):
                return True
            if not waited and on_wait is not None:
                on_wait(self.holder())
            waited = True
            if monotonic() >= deadline or stop.wait(poll_s):
                return False

    def holder(self) -> dict[str, Any] | None:
        """What ``owner.json`` says about the current holder (None when unreadable)."""
        try:
            data = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def release(self) -> None:
        """Let go (``owner.json`` stays; it is only trusted while the lock is held)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
