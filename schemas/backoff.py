"""Capped exponential backoff: the one retry schedule every loop in runstream uses.

A loop asks :meth:`Backoff.next_delay` after each failure and calls
:meth:`Backoff.reset` after a success; how it waits (an ``Event.wait`` that a
stop request cuts short, a condition variable) stays the loop's business::

    backoff = Backoff(initial_s=0.2, max_s=10.0)
    while not stop.is_set():
        try:
            action()
            backoff.reset()
        except Retriable:
            stop.wait(backoff.next_delay())
"""

from __future__ import annotations

import math

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``initial_s``, doubling (``factor``) per failure, never above ``max_s``."""

    __slots__ = ("initial_s", "max_s", "factor", "failures", "_next")

    def __init__(self, *, initial_s: float, max_s: float, factor: float = 2.0) -> None:
        if not (math.isfinite(initial_s) and initial_s > 0):
            raise ValueError(f"initial_s must be a positive number of seconds, got {initial_s!r}")
        if not (math.isfinite(max_s) and max_s >= initial_s):
            raise ValueError(f"max_s must be >= initial_s, got {max_s!r}")
        if not factor >= 1:
            raise ValueError(f"factor must be >= 1, got {factor!r}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.failures = 0
        """Failures since the last :meth:`reset` (for "failed N times" messages)."""
        self._next = initial_s

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        self.failures += 1
        delay = self._next
        self._next = min(self._next * self.factor, self.max_s)
        return delay

    def peek(self) -> float:
        """The delay :meth:`next_delay` would return, without counting a failure."""
        return self._next

    def reset(self) -> None:
        """After a success: the next failure waits ``initial_s`` again."""
        self.failures = 0
        self._next = self.initial_s
