"""``HyperDriveRun``: a sweep as a run. ``Experiment(ws, "ridge").submit(HyperDriveConfig(...))`` returns one.

The sweep's run (kind ``hyperdrive``) is the parent; each trial is a child
run (``parent_run_id`` = the sweep's run, id ``<sweep run id>_<trial>``)
started as a submitted script with the config's arguments followed by its
sampled ones. What is stored, for readers such as the UI's sweep view:

- the sweep's run: properties ``primary_metric_name``, ``primary_metric_goal``,
  ``sampling``, ``seed``, ``policy`` (JSON), ``max_total_runs``,
  ``max_concurrent_runs``, ``max_duration_minutes``, ``parameter_space``
  (JSON, when it fits 1,000 characters; always in the uploaded file
  ``hyperdrive/config.json``); its log holds every decision (trial launched,
  ended, stopped by the policy and why, sweep canceled or out of time); the
  metric table ``best_child_by_primary_metric`` (``run_id``, ``metric_name``,
  ``metric_value``) gains a row whenever the best trial changes, and
  ``early_termination`` (``run_id``, ``interval``, ``reason``) one per stopped
  trial.
- each trial's run: properties ``hyperparameters`` (the sampled values as a
  JSON object), ``hyperdrive_trial`` (its index, from 0) and ``arguments``
  (the script's whole argument list, JSON). A trial the policy stopped ends
  Canceled with the reason as its details (``get_details()["error"]``, code
  ``Canceled``).

The sweep runs on a thread of the submitting process; that process must live
until the sweep ends (a script that reaches its end waits for it and says so;
SIGTERM or Ctrl-C cancel it; if the process is killed outright, Linux stops
the trials and their runs read as Failed, "process lost", as do the sweep's).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sys
import threading
import time
from io import BytesIO
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TextIO

from schemas.records import FINAL_STATUSES, LogLine

from ..errors import JobFailed, SdkError
from ..jobs import registry
from ..jobs.config import ScriptRunConfig
from ..jobs.process import Job, start_job
from ..run import Experiment, Run
from ..values import truncate_middle
from .goal import PrimaryMetricGoal, best_value, score
from .launcher import SweepEvent, SweepLauncher, Trial
from .parameters import ParameterValue
from .stored import HYPERPARAMETERS, RUN_KIND
from .table import TrialRow, params_json, render_table

if TYPE_CHECKING:
    from .config import HyperDriveConfig

__all__ = ["HyperDriveRun", "start_sweep", "RUN_KIND", "POLICY_POLL_S"]

_log = logging.getLogger("runstream.hyperdrive")

POLICY_POLL_S = 0.5
"""How often the launcher reads the primary metric while a policy is active."""

_TABLE_TTY_S = 1.0
_TABLE_PIPE_S = 2.0
_STOP_WAIT_S = 60.0
"""How long ``cancel()`` waits for the trials to end (they get SIGTERM, then SIGKILL after 10 s)."""


class HyperDriveRun(Run):
    """A sweep's run: its trials are its children. ``HyperDriveRun(experiment, run_id)`` attaches to one."""

    _config: HyperDriveConfig | None = None
    _launcher: SweepLauncher | None = None
    _ended: threading.Event | None = None

    def __init__(self, experiment: Experiment, run_id: str, hyperdrive_config: HyperDriveConfig | None = None) -> None:
        super().__init__(experiment, run_id)
        self._config = hyperdrive_config

    # -- what it optimizes -----------------------------------------------------------------------------------------

    @property
    def hyperdrive_config(self) -> HyperDriveConfig | None:
        """The config, in the process that submitted the sweep (elsewhere: None; see the run's properties)."""
        return self._config

    def _objective(self) -> tuple[str, PrimaryMetricGoal]:
        if self._config is not None:
            return self._config.primary_metric_name, self._config.primary_metric_goal
        props = self.get_properties()
        try:
            return props["primary_metric_name"], PrimaryMetricGoal.parse(props["primary_metric_goal"])
        except KeyError:
            raise SdkError(f"run {self.id} is not a sweep's run (no primary_metric_name property)") from None

    # -- waiting and stopping ----------------------------------------------------------------------------------------

    def wait_for_completion(self, show_output: bool = False, raise_on_error: bool = True,
                            **_azure_kwargs: Any) -> dict[str, Any]:
        """Block until the sweep has ended; return its details. ``show_output=True`` prints a live table of the
        trials (trial, run, status, latest primary metric, parameters).

        Ctrl-C cancels the sweep (every running trial is stopped) and re-raises. A Failed sweep (every trial
        failed, or the launcher broke) raises :class:`~producers.errors.JobFailed` unless ``raise_on_error``
        is false.
        """
        return self._wait(show_output, raise_on_error, sys.stdout)

    def _wait(self, show_output: bool, raise_on_error: bool, out: TextIO) -> dict[str, Any]:
        table = _LiveTable(out, self) if show_output else None
        launcher, ended = self._launcher, self._ended
        try:
            if launcher is not None and ended is not None:
                if table is not None:
                    launcher.watch(True)
                try:
                    while not ended.wait(table.interval if table is not None else 0.25):
                        if table is not None:
                            table.show(launcher.rows())
                finally:
                    if table is not None:
                        launcher.watch(False)
                if table is not None:
                    table.show(launcher.rows(), final=True)
            else:
                while self.get_status() not in FINAL_STATUSES:
                    if table is not None:
                        table.show(self._rows_from_store())
                    time.sleep(table.interval if table is not None else 1.0)
                if table is not None:
                    table.show(self._rows_from_store(), final=True)
        except KeyboardInterrupt:
            if launcher is not None:
                launcher.cancel("interrupted (Ctrl-C) while waiting for the sweep")
                self._wait_ended(_STOP_WAIT_S)
            raise
        details: dict[str, Any] = dict(self.get_details())
        if raise_on_error and details.get("status") == "Failed":
            error = (details.get("error") or {}).get("message")
            raise JobFailed(f"sweep {self.id} failed: {error or '(no error details)'}", run_id=self.id,
                            error_details=error, exit_code=None)
        return details

    def _wait_ended(self, timeout: float | None) -> bool:
        return self._ended.wait(timeout) if self._ended is not None else True

    def cancel(self) -> bool:  # type: ignore[override]  # Azure ML's HyperDriveRun.cancel returns a bool
        """Cancel the sweep: no more trials, every running one is stopped (Canceled); returns once they ended.

        Only the process running the sweep can cancel it (elsewhere: stop that process, SIGTERM or Ctrl-C).
        """
        if self._launcher is None:
            if self.get_status() in FINAL_STATUSES:
                return False
            raise SdkError(f"sweep {self.id} runs in another process; stop that process (SIGTERM or Ctrl-C)")
        self._launcher.cancel("hd_run.cancel()")
        return self._wait_ended(_STOP_WAIT_S)

    def fail(self, error_details: str | BaseException | None = None, error_code: str | None = None) -> None:
        """Not supported for a sweep's run (as in Azure ML): ``cancel()`` it."""
        raise SdkError("a sweep's run cannot be failed by hand; cancel() it")

    # -- the trials as the store sees them -------------------------------------------------------------------------

    def get_hyperparameters(self) -> dict[str, str]:
        """Trial run id -> its sampled values as a JSON object (Azure ML's shape)."""
        return {child.id: child.get_properties().get("hyperparameters", "{}") for child in self.get_children()}

    def get_metrics(self, name: str | None = None) -> Any:
        """Trial run id -> its metrics (Azure ML's ``HyperDriveRun.get_metrics``). The sweep's own metrics:
        ``Run(experiment, hd_run.id).get_metrics()``."""
        return {child.id: child.get_metrics(name) for child in self.get_children()}

    def _trial_summaries(self) -> list[dict[str, Any]]:
        metric, goal = self._objective()
        children = list(self.get_children())
        ws = self.experiment.workspace
        series = ws.reader().get_metric_series(self.experiment.name, [c.id for c in children], metric)
        out = []
        for child in children:
            props = child.get_properties()
            values = series.get(child.id, [])
            out.append({"run": child, "run_id": child.id, "status": child.get_status(),
                        "hyperparameters": json.loads(props.get("hyperparameters", "{}")),
                        "trial": int(props.get("hyperdrive_trial", "0")),
                        "best_primary_metric": best_value(values, goal),
                        "latest": values[-1] if values else None})
        return out

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> list[dict[str, Any]]:
        """Trials ranked by their best primary metric (best first; ``reverse`` flips that), as dicts of
        ``run_id``, ``hyperparameters``, ``best_primary_metric`` and ``status``; trials without the metric
        follow (or are left out with ``discard_no_metric``); ``top`` > 0 keeps that many."""
        _, goal = self._objective()
        summaries = self._trial_summaries()
        with_metric = [s for s in summaries if s["best_primary_metric"] is not None]
        without = [s for s in summaries if s["best_primary_metric"] is None]
        with_metric.sort(key=lambda s: (-score(s["best_primary_metric"], goal), s["trial"]))
        if reverse:
            with_metric.reverse()
        ranked = with_metric + ([] if discard_no_metric else sorted(without, key=lambda s: s["trial"]))
        if top > 0:
            ranked = ranked[:top]
        keys = ("run_id", "hyperparameters", "best_primary_metric", "status")
        return [{k: s[k] for k in keys} for s in ranked]

    def get_best_run_by_primary_metric(self, include_failed: bool = True, include_canceled: bool = True,
                                       **_azure_kwargs: Any) -> Run | None:
        """The trial with the best primary metric (the first launched among equals); None when no trial logged
        it. ``include_failed`` / ``include_canceled`` keep Failed / Canceled trials in the running."""
        _, goal = self._objective()
        best: dict[str, Any] | None = None
        for summary in sorted(self._trial_summaries(), key=lambda s: s["trial"]):
            value = summary["best_primary_metric"]
            if value is None or math.isnan(value):
                continue
            if (summary["status"] == "Failed" and not include_failed) or \
                    (summary["status"] == "Canceled" and not include_canceled):
                continue
            if best is None or score(value, goal) > score(best["best_primary_metric"], goal):
                best = summary
        return None if best is None else best["run"]

    def _rows_from_store(self) -> list[TrialRow]:
        rows = []
        for s in self._trial_summaries():
            rows.append(TrialRow(s["trial"], s["run_id"], s["status"], s["hyperparameters"], s["latest"]))
        return rows

    # -- recording the launcher's decisions --------------------------------------------------------------------------

    def _record(self, event: SweepEvent) -> None:
        level = logging.WARNING if event.kind in ("canceled", "expired") else logging.INFO
        self.log_lines([LogLine(int(time.time() * 1000), "logging", "runstream.hyperdrive", level, event.message)])
        limit = self._limits.max_string_value_length
        if event.kind == "stopped" and event.run_id is not None:
            reason = event.message.split(": ", 1)[-1]
            self.log_row("early_termination", run_id=event.run_id, interval=event.interval or 0,
                         reason=truncate_middle(reason, limit))
        elif event.kind == "best" and event.run_id is not None and event.value is not None:
            metric, _ = self._objective()
            self.log_row("best_child_by_primary_metric", run_id=event.run_id, metric_name=metric,
                         metric_value=event.value)

    def _cancel_for_registry(self, reason: str) -> None:
        if self._launcher is not None:
            self._launcher.cancel(reason)


Run._register_kind(RUN_KIND, HyperDriveRun)


class _RegistryHandle:
    """The sweep as :class:`producers.jobs.registry.JobLauncher` (cancel is signal-safe: it sets a flag)."""

    def __init__(self, run: HyperDriveRun) -> None:
        self._run = run
        self.name = f"sweep {run.id}"

    def cancel(self, reason: str) -> None:
        self._run._cancel_for_registry(reason)

    def wait(self, timeout: float | None = None) -> bool:
        return self._run._wait_ended(timeout)


class _LiveTable:
    """Prints the trial table while a sweep runs: redrawn in place on a terminal, else on each status change."""

    def __init__(self, out: TextIO, run: HyperDriveRun) -> None:
        self._out = out
        self._tty = bool(getattr(out, "isatty", lambda: False)())
        self.interval = _TABLE_TTY_S if self._tty else _TABLE_PIPE_S
        self._metric, _ = run._objective()
        config = run.hyperdrive_config
        self._names: list[str] | None = list(config.hyperparameter_sampling.parameter_space) if config else None
        self._lines = 0
        self._last_key: tuple[tuple[int, str], ...] | None = None

    def show(self, rows: Sequence[TrialRow], *, final: bool = False) -> None:
        names = self._names if self._names is not None else sorted({k for r in rows for k in r.params})
        key = tuple((r.index, r.status) for r in rows)
        if not self._tty and key == self._last_key and not final:
            return
        if not self._tty and final and key == self._last_key:
            return
        self._last_key = key
        text = render_table(rows, self._metric, names)
        if self._tty and self._lines:
            self._out.write(f"\x1b[{self._lines}F\x1b[J")  # back to the table's first line, clear below
        self._out.write(text + "\n")
        if not self._tty:
            self._out.write("\n")
        self._out.flush()
        self._lines = text.count("\n") + 1


class _JobTrial:
    """A trial as the launcher sees it: the submitted job of its child run."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self.run_id = job.run.id

    def wait(self, timeout: float | None = None) -> bool:
        return self._job.wait(timeout)

    @property
    def status(self) -> str | None:
        result = self._job.result
        return result.status if result is not None and self._job.wait(0) else None

    @property
    def error(self) -> str | None:
        result = self._job.result
        return result.error_details if result is not None else None

    def request_stop(self, reason: str) -> None:
        self._job.request_stop(reason)


class _StoreMetrics:
    """The primary metric of many trials in one read, as the store sees it (the embedded home syncs first)."""

    def __init__(self, experiment: Experiment) -> None:
        self._experiment = experiment

    def series(self, run_ids: Sequence[str], name: str) -> dict[str, list[float]]:
        return self._experiment.workspace.reader().get_metric_series(self._experiment.name, run_ids, name)


def _trial_arguments(config: ScriptRunConfig, params: Mapping[str, ParameterValue]) -> list[str]:
    args = [str(a) for a in config.arguments or ()]
    for name, value in params.items():
        args += [name, str(value)]
    return args


def _sweep_properties(config: HyperDriveConfig, seed: int, max_concurrent: int, limit: int) -> dict[str, str]:
    assert config.policy is not None
    space = json.dumps({n: e.to_spec() for n, e in config.hyperparameter_sampling.parameter_space.items()})
    props = {
        "primary_metric_name": config.primary_metric_name,
        "primary_metric_goal": config.primary_metric_goal.value,
        "sampling": config.hyperparameter_sampling.algorithm,
        "seed": str(seed),
        "policy": json.dumps(config.policy.to_spec()),
        "max_total_runs": str(config.total_runs),
        "max_concurrent_runs": str(max_concurrent),
        "max_duration_minutes": f"{config.max_duration_minutes:g}",
        "script": str(config.run_config.script) if config.run_config else "",
    }
    if len(space) <= limit:
        props["parameter_space"] = space
    return props


def start_sweep(experiment: Experiment, config: HyperDriveConfig, tags: Mapping[str, str | None] | None = None, *,
                poll_s: float = POLICY_POLL_S, stop_grace_s: float = 10.0) -> HyperDriveRun:
    """Start ``config``'s sweep in ``experiment``: its run, then its launcher thread; returns at once.

    A missing folder or script fails here (``ConfigurationError``), before any run exists.
    """
    run_config = config.run_config
    assert run_config is not None
    run_config.resolve()
    settings = experiment.workspace.settings
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    max_concurrent = config.max_concurrent_runs or max(1, min(os.cpu_count() or 1, config.total_runs))
    props = _sweep_properties(config, seed, max_concurrent, settings.limits.max_attribute_value_length)
    parent = HyperDriveRun._start(experiment, display_name=None, tags=tags, properties=props, kind=RUN_KIND)
    # After the run started (its emitter put the flushing SIGTERM handler in place) and on the caller's
    # (main) thread, as for a submitted script: SIGTERM then stops the sweep first and waits for it.
    registry.install_hooks(settings.install_signal_handlers)
    assert isinstance(parent, HyperDriveRun)
    parent._config = config
    parent._ended = threading.Event()
    spec = {**config.to_spec(), "seed": seed, "max_concurrent_runs": max_concurrent,
            "script": str(run_config.script), "arguments": list(run_config.arguments or [])}
    parent.upload_file("hyperdrive/config.json", BytesIO(json.dumps(spec, indent=2).encode()))

    def start_trial(index: int, params: Mapping[str, ParameterValue]) -> Trial:
        arguments = _trial_arguments(run_config, params)
        trial_config = ScriptRunConfig(run_config.source_directory, run_config.script, arguments=arguments,
                                       environment=run_config.environment)
        child = Run._start(experiment, display_name=f"trial {index}", tags=None, run_id=f"{parent.id}_{index}",
                           properties={HYPERPARAMETERS: params_json(params), "hyperdrive_trial": str(index),
                                       "arguments": truncate_middle(json.dumps(arguments),
                                                                    settings.limits.max_attribute_value_length)},
                           kind="submitted", parent=parent)
        job = start_job(child, trial_config, stop_grace_s=stop_grace_s)
        child._job = job
        return _JobTrial(job)

    launcher = SweepLauncher(config, seed=seed, max_concurrent_runs=max_concurrent, start_trial=start_trial,
                             metrics=_StoreMetrics(experiment), on_event=parent._record, poll_s=poll_s,
                             warm_up=lambda: None if _StoreMetrics(experiment).series(
                                 [parent.id], config.primary_metric_name) else None)
    parent._launcher = launcher
    handle = _RegistryHandle(parent)
    registry.add_launcher(handle)

    def drive() -> None:
        try:
            launcher.run()
        except BaseException:
            pass  # logged by the launcher, which also stopped the trials; the run ends Failed below
        finally:
            try:
                status, error = launcher.status or "Failed", launcher.error
                if status == "Completed":
                    parent.complete()
                elif status == "Canceled":
                    parent._end("Canceled", error)
                else:
                    parent.fail(error or "the sweep failed")
            finally:
                registry.remove_launcher(handle)
                assert parent._ended is not None
                parent._ended.set()

    thread = threading.Thread(target=drive, name=f"runstream-sweep-{parent.id[:40]}", daemon=True)
    thread.start()
    _log.info("runstream: sweep %s started: %s trials at most, %d at a time", parent.id, config.total_runs,
              max_concurrent)
    return parent
