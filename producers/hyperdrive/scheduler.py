"""The sweep's scheduling rules as a state machine with no I/O: what to launch and what to stop, and when.

    scheduler = SweepScheduler(config.hyperparameter_sampling.trials(seed=7), max_total_runs=20,
                               max_concurrent_runs=4, max_duration_s=600.0, clock=time.monotonic)
    for action in scheduler.poll():          # Launch(index, params) / Stop(index, reason)
        ...                                  # the launcher starts or stops the child run, then reports back:
    scheduler.ended(index, "Completed")      # a trial's run ended (Completed, Failed or Canceled)
    scheduler.stop(index, reason)            # the policy wants a trial stopped (returns the Stop to carry out)
    scheduler.cancel("hd_run.cancel()")      # the sweep is canceled: every running trial is stopped

Rules (Azure ML's): a trial is launched only while fewer than
``max_concurrent_runs`` are running (a trial asked to stop still counts until
its run has ended: its process may still be alive), at most
``max_total_runs`` in all, never after the sampler is used up, the sweep is
canceled or ``max_duration_s`` has passed since the scheduler was made. Past
the duration every running trial is stopped. The sweep is done when nothing is
running and nothing more may be launched. It ends Canceled if it was
canceled, Failed if every trial failed, else Completed (a failing trial does
not fail the sweep, as in Azure ML).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from .parameters import ParameterValue

__all__ = ["Launch", "Stop", "SweepScheduler", "TRIAL_END_STATUSES"]

TRIAL_END_STATUSES = frozenset({"Completed", "Failed", "Canceled"})


@dataclass(frozen=True, slots=True)
class Launch:
    """Start trial ``index`` (0-based, in sampling order) with ``params``."""

    index: int
    params: Mapping[str, ParameterValue]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop trial ``index``; its run ends Canceled with ``reason`` in its details."""

    index: int
    reason: str


class SweepScheduler:
    """Decides launches and stops from the trials' lifecycle and a clock; the launcher carries them out."""

    def __init__(self, trials: Iterator[Mapping[str, ParameterValue]], *, max_total_runs: int | None,
                 max_concurrent_runs: int, max_duration_s: float, clock: Callable[[], float]) -> None:
        if max_concurrent_runs < 1 or (max_total_runs is not None and max_total_runs < 1) or max_duration_s <= 0:
            raise ValueError("max_concurrent_runs, max_total_runs and max_duration_s must be positive")
        self._trials = trials
        self._max_total = max_total_runs
        self._max_concurrent = max_concurrent_runs
        self._clock = clock
        self._deadline = clock() + max_duration_s
        self._launched = 0
        self._exhausted = False
        self._running: set[int] = set()
        self._stopping: dict[int, str] = {}
        self._ended: dict[int, str] = {}
        self._canceled: str | None = None
        self._expired = False

    # -- what the launcher asks -----------------------------------------------------------------------------------

    def poll(self) -> list[Launch | Stop]:
        """The actions due now: stops for a sweep past its duration, then launches into free slots."""
        actions: list[Launch | Stop] = []
        if not self._expired and self._canceled is None and self._clock() >= self._deadline:
            self._expired = True
            actions.extend(self._stop_all("the sweep reached its max_duration_minutes"))
        while self._may_launch() and len(self._running) < self._max_concurrent:
            try:
                params = next(self._trials)
            except StopIteration:
                self._exhausted = True
                break
            index = self._launched
            self._launched += 1
            self._running.add(index)
            actions.append(Launch(index, dict(params)))
        return actions

    def seconds_to_deadline(self) -> float:
        """How long until ``max_duration`` is reached (0 once it is): the longest a launcher may wait to poll."""
        return max(0.0, self._deadline - self._clock())

    @property
    def done(self) -> bool:
        """Nothing runs and nothing more will be launched (call after :meth:`poll`, which finds a used-up sampler)."""
        return not self._running and not self._may_launch()

    @property
    def status(self) -> str:
        """How the sweep ends (meaningful once :attr:`done`): Canceled, Failed (every trial failed) or Completed."""
        if self._canceled is not None:
            return "Canceled"
        if self._ended and all(status == "Failed" for status in self._ended.values()):
            return "Failed"
        return "Completed"

    @property
    def running(self) -> frozenset[int]:
        """Trials launched and not yet ended (including those asked to stop)."""
        return frozenset(self._running)

    @property
    def launched(self) -> int:
        """How many trials were launched."""
        return self._launched

    @property
    def ended(self) -> Mapping[int, str]:
        """Trial index -> how it ended."""
        return dict(self._ended)

    def stopping_reason(self, index: int) -> str | None:
        """Why the trial was asked to stop, if it was."""
        return self._stopping.get(index)

    # -- what the launcher reports ---------------------------------------------------------------------------------

    def trial_ended(self, index: int, status: str) -> None:
        """Trial ``index``'s run has ended with ``status`` (its process is gone); frees its slot."""
        if status not in TRIAL_END_STATUSES:
            raise ValueError(f"a trial ends Completed, Failed or Canceled, not {status!r}")
        if index not in self._running:
            raise ValueError(f"trial {index} is not running")
        self._running.discard(index)
        self._ended[index] = status

    def stop(self, index: int, reason: str) -> Stop | None:
        """Ask to stop a running trial (the policy decided); the Stop to carry out, None if it is not running or
        already stopping."""
        if index not in self._running or index in self._stopping:
            return None
        self._stopping[index] = reason
        return Stop(index, reason)

    def cancel(self, reason: str) -> list[Stop]:
        """Cancel the sweep: no more launches; the Stops for every running trial."""
        if self._canceled is not None:
            return []
        self._canceled = reason
        return self._stop_all(reason)

    @property
    def canceled(self) -> str | None:
        """Why the sweep was canceled, if it was."""
        return self._canceled

    # -- rules ---------------------------------------------------------------------------------------------------

    def _may_launch(self) -> bool:
        return (self._canceled is None and not self._expired and not self._exhausted
                and (self._max_total is None or self._launched < self._max_total)
                and self._clock() < self._deadline)

    def _stop_all(self, reason: str) -> list[Stop]:
        stops = []
        for index in sorted(self._running):
            stop = self.stop(index, reason)
            if stop is not None:
                stops.append(stop)
        return stops

    def __repr__(self) -> str:
        left = "inf" if math.isinf(self._deadline) else f"{self.seconds_to_deadline():.0f}s"
        return (f"SweepScheduler(launched={self._launched}, running={len(self._running)}, "
                f"ended={len(self._ended)}, canceled={self._canceled is not None}, time left={left})")
