"""The sweep's driver: launches trials, watches them end, reads the primary metric, applies the policy.

One :class:`SweepLauncher` runs per sweep, on its own thread in the
submitting process. It does no I/O itself; two narrow seams do:

- ``start_trial(index, params) -> Trial``: start the trial's child run (in
  runstream, a submitted script whose run's parent is the sweep's run);
- ``metrics.series(run_ids, name)``: each trial's primary-metric values in
  logged order, as the store sees them.

The loop wakes when a trial ends, when :meth:`SweepLauncher.cancel` is
called, every ``poll_s`` while a policy (or a watcher) needs fresh metrics,
and at the sweep's deadline. Every decision is reported to ``on_event`` (the
sweep's run logs it). ``cancel`` only sets a flag, so it is safe from a signal
handler; the loop then stops every running trial and ends once they have.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

from ..errors import ReadError
from .goal import best_value, score
from .parameters import ParameterValue
from .policies import NoTerminationPolicy, PolicyEvaluator
from .scheduler import Launch, Stop, SweepScheduler
from .table import TrialRow

if TYPE_CHECKING:
    from .config import HyperDriveConfig

__all__ = ["Trial", "TrialStarter", "MetricSource", "SweepEvent", "SweepLauncher"]

_log = logging.getLogger("runstream.hyperdrive")


class Trial(Protocol):
    """A started trial: its run id, whether and how it ended, and a way to stop it."""

    @property
    def run_id(self) -> str:
        """The trial's run id."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the trial has ended (its run is ended and its process gone); False on timeout."""
        ...

    @property
    def status(self) -> str | None:
        """Completed, Failed or Canceled once ended; None while running."""
        ...

    @property
    def error(self) -> str | None:
        """How it failed (its error details), if it did."""
        ...

    def request_stop(self, reason: str) -> None:
        """Stop it (its run ends Canceled with ``reason``); never blocks."""
        ...


TrialStarter = Callable[[int, Mapping[str, ParameterValue]], Trial]
"""Starts trial ``index`` with the sampled ``params``."""


class MetricSource(Protocol):
    """Reads the primary metric of many runs at once."""

    def series(self, run_ids: Sequence[str], name: str) -> dict[str, list[float]]:
        """Run id -> the numeric values of metric ``name`` in logged order (runs without it may be left out)."""
        ...


@dataclass(frozen=True, slots=True)
class SweepEvent:
    """A decision or change the sweep's run records: ``kind`` is one of launched, ended, stopped, canceled,
    expired, best."""

    kind: str
    message: str
    index: int | None = None
    run_id: str | None = None
    interval: int | None = None
    value: float | None = None


class SweepLauncher:
    """Drives one sweep to its end (see the module docstring)."""

    def __init__(self, config: HyperDriveConfig, *, seed: int, max_concurrent_runs: int, start_trial: TrialStarter,
                 metrics: MetricSource, on_event: Callable[[SweepEvent], None] = lambda event: None,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.5,
                 warm_up: Callable[[], None] | None = None) -> None:
        self.config = config
        self._policy = config.policy or NoTerminationPolicy()
        goal = config.primary_metric_goal
        self._evaluator = PolicyEvaluator(self._policy, goal, config.primary_metric_name)
        self._scheduler = SweepScheduler(config.hyperparameter_sampling.trials(seed=seed),
                                         max_total_runs=config.max_total_runs,
                                         max_concurrent_runs=max_concurrent_runs,
                                         max_duration_s=config.max_duration_minutes * 60.0, clock=clock)
        self._start_trial = start_trial
        self._metrics = metrics
        self._on_event = on_event
        self._clock = clock
        self._poll_s = poll_s
        self._warm_up = warm_up
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._cancel_reason: str | None = None
        self._watchers = 0
        self._trials: dict[int, Trial] = {}
        self._rows: dict[int, TrialRow] = {}
        self._best: tuple[str, float] | None = None
        self._last_read = -math.inf
        self._expired = False
        self.status: str | None = None
        """How the sweep ended (Completed, Failed, Canceled); None while it runs."""
        self.error: str | None = None
        """Why the sweep failed or was canceled."""

    # -- the caller's side ---------------------------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Cancel the sweep: no more trials; the running ones are stopped. Non-blocking, signal-safe."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sweep has ended; False on timeout."""
        return self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        """The sweep has ended."""
        return self._finished.is_set()

    def watch(self, on: bool) -> None:
        """A watcher (the live table) wants the latest metric values even without a policy."""
        with self._lock:
            self._watchers += 1 if on else -1
        self._wake.set()

    def rows(self) -> list[TrialRow]:
        """The trials so far, for the table."""
        with self._lock:
            return [self._rows[i] for i in sorted(self._rows)]

    def live_trials(self) -> list[Trial]:
        """Trials still running."""
        with self._lock:
            return [t for t in self._trials.values() if t.status is None]

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self) -> str:
        """Drive the sweep to its end; returns its status. A crash of the loop stops every trial first."""
        try:
            if self._warm_up is not None and not isinstance(self._policy, NoTerminationPolicy):
                # A policy is blind until the store answers (the embedded home's owner may take seconds to
                # start): wait for it before the first trial, so no trial outruns its policy.
                try:
                    self._warm_up()
                except ReadError as exc:
                    _log.warning("runstream: sweep: the store does not answer yet (%s); starting anyway", exc)
            self._loop()
            self.status = self._scheduler.status
            if self.status == "Canceled":
                self.error = self._scheduler.canceled
            elif self.status == "Failed":
                self.error = "every trial failed"
        except BaseException as exc:
            self.status, self.error = "Failed", f"the sweep's launcher failed: {exc!r}"
            _log.exception("runstream: sweep launcher failed; stopping its trials")
            for trial in self.live_trials():
                trial.request_stop(self.error)
            for trial in self.live_trials():
                trial.wait()
            raise
        finally:
            self._finished.set()
        return self.status

    def _loop(self) -> None:
        scheduler = self._scheduler
        while True:
            self._wake.clear()
            self._collect_ended()  # first: freed slots are filled by this round's poll
            actions: list[Launch | Stop] = []
            if self._cancel_reason is not None and scheduler.canceled is None:
                actions += scheduler.cancel(self._cancel_reason)
                self._emit(SweepEvent("canceled", f"sweep canceled: {self._cancel_reason}"))
            if not self._expired and scheduler.seconds_to_deadline() == 0:
                self._expired = True
                self._emit(SweepEvent("expired", "the sweep reached max_duration_minutes "
                                                 f"({self.config.max_duration_minutes:g}): no more trials, the "
                                                 "running ones are stopped"))
            polled = scheduler.poll()
            for action in actions + polled:
                if isinstance(action, Launch):
                    self._launch(action)
                else:
                    self._stop(action)
            if self._wants_metrics() and self._clock() - self._last_read >= self._poll_s:
                self._read_metrics()
            if scheduler.done:
                if scheduler.canceled is None:  # a canceled sweep ends now (SIGTERM: the process is stopping)
                    self._read_metrics_final()
                return
            timeout = scheduler.seconds_to_deadline()
            if self._wants_metrics():
                timeout = min(timeout, self._poll_s)
            self._wake.wait(max(timeout, 0.001))

    def _launch(self, launch: Launch) -> None:
        trial = self._start_trial(launch.index, launch.params)
        with self._lock:
            self._trials[launch.index] = trial
            self._rows[launch.index] = TrialRow(launch.index, trial.run_id, "Running", dict(launch.params), None)
        waker = threading.Thread(target=self._wake_when_done, args=(trial,), daemon=True,
                                 name=f"runstream-sweep-trial-{launch.index}")
        waker.start()
        params = ", ".join(f"{k} {v}" for k, v in launch.params.items())
        self._emit(SweepEvent("launched", f"trial {launch.index} ({trial.run_id}) launched: {params}",
                              index=launch.index, run_id=trial.run_id))

    def _wake_when_done(self, trial: Trial) -> None:
        trial.wait()
        self._wake.set()

    def _stop(self, stop: Stop) -> None:
        trial = self._trials[stop.index]
        trial.request_stop(stop.reason)
        with self._lock:
            self._rows[stop.index] = replace(self._rows[stop.index], status="Canceling", note=stop.reason)

    def _collect_ended(self) -> None:
        for index in sorted(self._scheduler.running):
            trial = self._trials[index]
            status = trial.status
            if status is None:
                continue
            self._scheduler.trial_ended(index, status)
            note = {"Canceled": self._scheduler.stopping_reason(index) or trial.error or "",
                    "Failed": trial.error or ""}.get(status, "")  # a stop that came after the exit changed nothing
            with self._lock:
                self._rows[index] = replace(self._rows[index], status=status, note=note.splitlines()[-1] if note else "")
            how = f"ended {status}" + (f": {note}" if note else "")
            self._emit(SweepEvent("ended", f"trial {index} ({trial.run_id}) {how}", index=index,
                                  run_id=trial.run_id))

    def _wants_metrics(self) -> bool:
        active = not isinstance(self._policy, NoTerminationPolicy) or self._watchers > 0
        return active and bool(self._scheduler.running)

    def _read_metrics(self) -> dict[str, list[float]] | None:
        self._last_read = self._clock()
        with self._lock:
            run_ids = {index: trial.run_id for index, trial in self._trials.items()}
        if not run_ids:
            return None
        try:
            series = self._metrics.series(list(run_ids.values()), self.config.primary_metric_name)
        except ReadError as exc:
            _log.warning("runstream: sweep: reading %s failed (will retry): %s", self.config.primary_metric_name, exc)
            return None
        by_run = {run_id: index for index, run_id in run_ids.items()}
        with self._lock:
            for run_id, values in series.items():
                index = by_run.get(run_id)
                if index is not None and values:
                    self._rows[index] = replace(self._rows[index], latest=values[-1])
        self._note_best(series)
        running = [run_ids[i] for i in self._scheduler.running if self._scheduler.stopping_reason(i) is None]
        for evaluation in self._evaluator.evaluate(series, running):
            if not evaluation.stop or evaluation.reason is None:
                continue
            index = by_run[evaluation.trial]
            stop = self._scheduler.stop(index, evaluation.reason)
            if stop is None:
                continue
            self._emit(SweepEvent("stopped", f"trial {index} ({evaluation.trial}) stopped: {evaluation.reason}",
                                  index=index, run_id=evaluation.trial, interval=evaluation.interval))
            self._stop(stop)
        return series

    def _read_metrics_final(self) -> None:
        """One last read once every trial has ended, so the table and the best child are final."""
        if self._trials:
            self._read_metrics()

    def _note_best(self, series: Mapping[str, Sequence[float]]) -> None:
        goal = self.config.primary_metric_goal
        leader: tuple[str, float] | None = None
        for run_id, values in series.items():
            best = best_value(values, goal)
            if best is not None and not math.isnan(best) and (leader is None or score(best, goal) > score(leader[1], goal)):
                leader = (run_id, best)
        if leader is not None and leader != self._best:
            self._best = leader
            self._emit(SweepEvent("best", f"best so far: {leader[0]} with {self.config.primary_metric_name} "
                                          f"{leader[1]:g}", run_id=leader[0], value=leader[1]))

    def _emit(self, event: SweepEvent) -> None:
        _log.info("runstream: sweep: %s", event.message)
        try:
            self._on_event(event)
        except Exception:
            _log.exception("runstream: sweep: recording an event failed")
