"""Submitted jobs: ``experiment.submit(ScriptRunConfig(...))`` runs a script as a run, locally.

    from producers import Experiment, ScriptRunConfig, Workspace

    config = ScriptRunConfig(source_directory="src", script="train.py", arguments=["--lr", "0.1"])
    run = Experiment(Workspace(), "mnist").submit(config, tags={"sweep": "lr"})
    details = run.wait_for_completion(show_output=True)   # raises JobFailed if the script failed

How a job runs:

- The submitter starts the run (``RunStarted``, kind "submitted") and a
  supervising thread, which starts ``python -m producers.job_bootstrap
  SCRIPT ARGS`` in ``source_directory``, in a new session (its own process
  group, so a terminal's Ctrl-C reaches the submitter, not the job). The run's
  context and the workspace's settings travel in the environment
  (``RUNSTREAM_RUN_ID``, ``RUNSTREAM_EXPERIMENT``, ``RUNSTREAM_CONFIG`` -> a
  private settings file); ``Run.get_context()`` in the script attaches to the
  run. ``PYTHONUNBUFFERED=1`` unless the config sets it, so output is live.
- Two reader threads turn the job's stdout and stderr into log lines of the
  run (``stream`` "stdout" / "stderr", level INFO / WARNING, the time each
  line was read, never decreasing). Memory stays bounded: a partial line holds
  at most ``max_log_line_length`` characters (longer lines are split), bytes
  are decoded as UTF-8 with ``errors="replace"``, and the emitter's
  ``max_buffer_bytes`` applies (when it is full the readers wait, the pipe
  fills, the job's writes block: back-pressure, not growth).
- When the script exits, the rest of its process group is killed (the job is
  over), ``./outputs`` is uploaded as ``outputs/...`` (files over
  ``max_file_bytes`` or unreadable are skipped with a warning, logged and kept
  in the run's log), and the run ends: exit 0 -> Completed; otherwise Failed
  with the script's traceback (or the tail of its stderr, or the exit code /
  signal) as error details, at most ``max_error_details_length`` (3,000)
  characters.
- Stopping: Ctrl-C in ``wait_for_completion``, SIGTERM of the submitter, or
  the submitter exiting after a KeyboardInterrupt sends SIGTERM to the job's
  process group, then SIGKILL after ``stop_grace_s`` (10 s); the run ends
  Canceled. If the submitter dies outright (SIGKILL), Linux stops the job
  (``PR_SET_PDEATHSIG``) and the run reads as Failed ("process lost") once its
  heartbeats stop. A submitter that simply reaches its end while a job still
  runs waits for the job first (logged), like a terminal waiting for a
  foreground command.

Modules, one job each: :mod:`~producers.jobs.config` (what to run, how it
ended), :mod:`~producers.jobs.launch` (the child process's command and
environment), :mod:`~producers.jobs.process` (supervising one job: capture,
stop, end its run), :mod:`~producers.jobs.outputs` (uploading ``./outputs``),
:mod:`~producers.jobs.registry` (this process's running jobs, SIGTERM and
exit), :mod:`~producers.jobs.waiting` (``wait_for_completion``),
:mod:`~producers.jobs.capture` and :mod:`~producers.jobs.logs` (lines in and
out), :mod:`~producers.job_bootstrap` (the first code the job runs).
"""

from .config import ENV_ERROR_FILE, ENV_SUBMITTER_PID, JobEnvironment, JobResult, ScriptRunConfig, exit_code_of
from .process import Job
from .registry import job_of
from .waiting import wait_for_completion, wait_result

__all__ = [
    "ENV_ERROR_FILE",
    "ENV_SUBMITTER_PID",
    "Job",
    "JobEnvironment",
    "JobResult",
    "ScriptRunConfig",
    "exit_code_of",
    "job_of",
    "wait_for_completion",
    "wait_result",
]
