"""The upload thread: file uploads are hashed and queued off the caller's thread.

``run.upload_file`` checks its arguments and opens the file on the caller's
thread, then hands the rest — one pass over the whole file for its SHA-256,
then the chunks, which may wait for room in the buffer — to one thread per
emitter (``runstream-uploader``), in call order. A run's end waits for that
run's uploads first, and a flush or close of the emitter waits for all of
them, so a file is never cut off by the run's final status.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Callable

__all__ = ["Uploader"]

Job = Callable[[], None]
"""One upload's background work; it reports its own failures (never raises)."""


class Uploader:
    """Runs jobs one at a time, in submission order, on a daemon thread started when work arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._jobs: deque[tuple[str, Job]] = deque()
        self._pending: Counter[str] = Counter()  # key -> jobs submitted and not finished
        self._thread: threading.Thread | None = None

    def submit(self, key: str, job: Job) -> None:
        """Queue ``job`` under ``key`` (a run id)."""
        with self._lock:
            self._jobs.append((key, job))
            self._pending[key] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="runstream-uploader", daemon=True)
                self._thread.start()

    def wait(self, key: str | None = None, timeout: float | None = None) -> bool:
        """Wait until no job of ``key`` (any key when None) is pending; False on timeout.

        Called from the upload thread itself (a job ending its run) it does not wait.
        """
        if threading.current_thread() is self._thread:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending[key] if key is not None else self._pending.total():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    return
                key, job = self._jobs.popleft()
            try:
                job()
            finally:
                with self._lock:
                    self._pending[key] -= 1
                    if not self._pending[key]:
                        del self._pending[key]
                    self._changed.notify_all()
