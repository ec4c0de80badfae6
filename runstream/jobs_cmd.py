"""``runstream submit`` and ``runstream logs``, over the SDK's submitted jobs and read-back.

    runstream submit train.py --lr 0.1 --experiment mnist --tag sweep=lr --show-output
    runstream logs mnist_1718000000_1a2b3c4d --follow

The workspace comes from the environment and ``runstream.json``, as
``Workspace.default()`` builds it (``RUNSTREAM_HOME``, ``RUNSTREAM_KAFKA``,
``RUNSTREAM_CLICKHOUSE``...).

``submit``'s own options may come before or after SCRIPT; everything else
after SCRIPT is the script's. After ``--`` everything is the script's, so a
script option spelled like one of ours goes there
(``runstream submit -e mnist train.py -- --tag x``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from producers import Experiment, Workspace
from producers.errors import RunNotFound
from producers.jobs import JobEnvironment, ScriptRunConfig, exit_code_of, wait_result
from producers.jobs.logs import ALL_STREAMS, OUTPUT_STREAMS, LogFollower, format_line
from schemas.errors import PipelineError
from schemas.records import FINAL_STATUSES
from store import RunReader

__all__ = ["register"]


def _pair(text: str) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value if sep else None


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def _add_submit_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("-e", "--experiment", default=default, metavar="NAME", help="the experiment of the run (required)")
    p.add_argument("--tag", type=_pair, action="append", default=default, metavar="KEY=VALUE",
                   help="a tag of the run (repeatable; KEY alone: a valueless tag)")
    p.add_argument("--show-output", action="store_true", default=default,
                   help="stream the job's stdout/stderr here while it runs")
    p.add_argument("--source-directory", type=Path, default=default, metavar="DIR",
                   help="the job's working directory; SCRIPT is relative to it (default: .)")
    p.add_argument("--env", type=_env_pair, action="append", default=default, metavar="NAME=VALUE",
                   help="an extra environment variable of the job (repeatable)")
    p.add_argument("--python", default=default, metavar="PATH",
                   help="the interpreter to run the job with (default: this one; must have runstream installed)")


def register(subparsers: Any) -> None:
    """Add ``submit`` and ``logs``."""
    p = subparsers.add_parser(
        "submit", help="run a Python script as a run, capturing its output; exits with the script's exit code",
        description=(
            "Start SCRIPT as a new run of --experiment, in --source-directory (default: here). Run.get_context() "
            "in the script returns that run; its stdout, stderr and logging records are kept as the run's log; "
            "./outputs is uploaded when it ends. Exit 0 -> Completed, else Failed with the traceback / end of "
            "stderr. Ctrl-C or SIGTERM stops the job (Canceled). Exits with the script's exit code (128+N when "
            "killed by signal N, 130 when interrupted)."),
    )
    _add_submit_options(p, suppress=False)
    p.add_argument("script", metavar="SCRIPT", help="the Python script")
    p.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's arguments")
    p.set_defaults(handler=_submit)

    logs = subparsers.add_parser(
        "logs", help="print a run's captured output, in order",
        description=("Print the stdout and stderr a run captured, in order (--stream logging: its Python logging "
                     "records; all: both). Reads through the store like Run.get_metrics(): on the embedded "
                     "default no server is needed; with Kafka, `runstream ingest` must be running."),
    )
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")
    logs.add_argument("--stream", choices=("output", "logging", "all"), default="output",
                      help="output = stdout+stderr (default), logging = Python logging records, all = both")
    logs.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its UTC time")
    logs.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                      help="with --follow: how often to look for new lines (default: 1)")
    logs.set_defaults(handler=_logs)


def _split_script_args(args: argparse.Namespace) -> list[str]:
    """Take our own options out of what followed SCRIPT; the rest (and all after ``--``) is the script's."""
    rest: list[str] = list(args.arguments)
    head, tail = rest, []
    if "--" in rest:
        cut = rest.index("--")
        head, tail = rest[:cut], rest[cut + 1:]
    extra = argparse.ArgumentParser(prog="runstream submit", add_help=False, allow_abbrev=False)
    _add_submit_options(extra, suppress=True)
    found, script_args = extra.parse_known_args(head)
    for name, value in vars(found).items():
        if isinstance(value, list) and getattr(args, name, None):
            setattr(args, name, getattr(args, name) + value)
        else:
            setattr(args, name, value)
    return script_args + tail


def _say(message: str) -> None:
    print(f"runstream: {message}", file=sys.stderr, flush=True)


def _submit(args: argparse.Namespace) -> int:
    script_args = _split_script_args(args)
    if not args.experiment:
        _say("submit: --experiment NAME is required")
        return 2
    try:
        config = ScriptRunConfig(
            args.source_directory or Path.cwd(), args.script, script_args,
            JobEnvironment(environment_variables=dict(args.env or []), interpreter_path=args.python))
        workspace = Workspace.default()
        run = Experiment(workspace, args.experiment).submit(config, tags=dict(args.tag or []))
    except PipelineError as exc:
        _say(f"submit: {exc}")
        return 2
    _say(f"run {run.id} started (experiment {args.experiment}); `runstream logs {run.id} --follow` shows its output")
    try:
        result = wait_result(run, show_output=bool(args.show_output))
    except KeyboardInterrupt:
        _say(f"run {run.id} Canceled (interrupted)")
        return 130
    code = exit_code_of(result)
    if result.status == "Failed":
        if not args.show_output and result.error_details:
            print(result.error_details, file=sys.stderr)
        _say(f"run {run.id} Failed (exit code {code})")
    else:
        _say(f"run {run.id} {result.status}" + (f" (exit code {code})" if code else ""))
    return code


def _first_status(reader: RunReader, run_id: str, *, wait_s: float, interval_s: float) -> str:
    """The run's status; with ``wait_s``, a run not ingested yet (just submitted) is waited for."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            return str(reader.get_status(run_id))
        except RunNotFound:
            if time.monotonic() >= deadline:
                raise
            if not said:
                _say(f"logs: waiting for run {run_id} to be ingested")
                said = True
            time.sleep(interval_s)


def _logs(args: argparse.Namespace) -> int:
    streams: Sequence[str] = {"output": OUTPUT_STREAMS, "logging": ("logging",), "all": ALL_STREAMS}[args.stream]
    try:
        workspace = Workspace.default()
        reader = workspace.reader()
        status = _first_status(reader, args.run_id, wait_s=workspace.settings.visible_timeout_s if args.follow else 0.0,
                               interval_s=max(args.interval, 0.05))
        follower = LogFollower(reader, args.run_id, streams=streams)
        printed = 0
        while True:
            final = status in FINAL_STATUSES
            if final:
                reader.wait_settled(args.run_id)  # the last lines may land just after the status row
            for line in follower.new_lines():
                sys.stdout.write(format_line(line, timestamps=args.timestamps) + "\n")
                printed += 1
            sys.stdout.flush()
            if not args.follow or final:
                break
            time.sleep(max(args.interval, 0.05))
            status = reader.get_status(args.run_id)
    except RunNotFound as exc:
        _say(f"logs: {exc}")
        return 1
    except PipelineError as exc:
        _say(f"logs: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `runstream logs ID | head`: the reader went away; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not printed and args.stream == "output" and follower.skipped_streams.get("logging"):
        _say(f"logs: no captured stdout/stderr; {follower.skipped_streams['logging']} logging record(s): "
             "--stream logging shows them")
    return 0
