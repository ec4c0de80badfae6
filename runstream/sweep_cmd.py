"""``runstream sweep``: a HyperDrive sweep from a shell, with the options a sweep file (YAML or JSON) has.

    runstream sweep train.py --epochs 10 -e ridge --sampling grid --param "--alpha=choice(0.0, 0.1, 0.3, 1.0)" \\
        --primary-metric-name mse --primary-metric-goal minimize --max-total-runs 20 --max-concurrent-runs 4 \\
        --policy "bandit(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)"
    runstream sweep --file sweep.yaml                      # the same keys: max_total_runs: 20, parameters: {...}
    runstream sweep --file sweep.yaml --max-concurrent-runs 2       # options override the file's keys

Each option is a key of the file (``--max-total-runs`` is ``max_total_runs``);
``--param NAME=EXPR`` (repeatable) adds to or replaces the file's
``parameters``. As with ``runstream submit``, our options may come before or
after SCRIPT, and everything after ``--`` is the script's. A relative
``source_directory`` in a file is relative to the file's folder; on the command
line, to the current one.

Prints the trial table while the sweep runs (``--no-table``: only the start and
end lines). Exit code: 0 when the sweep Completed, 1 when it Failed (every trial
failed), 130 when Ctrl-C canceled it, 2 for a bad sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from producers import Experiment, Workspace
from producers.hyperdrive.spec import SWEEP_KEYS, sweep_from_mapping
from schemas.errors import ConfigurationError, PipelineError

__all__ = ["register", "normalize_argv", "read_sweep_file", "sweep_mapping"]

_SCALAR_OPTIONS = ("experiment", "sampling", "seed", "primary_metric_name", "primary_metric_goal", "max_total_runs",
                   "max_concurrent_runs", "max_duration_minutes", "policy")


def _param(text: str) -> tuple[str, str]:
    name, sep, expression = text.partition("=")
    if not name or not sep or not expression:
        raise argparse.ArgumentTypeError(f"expected NAME=EXPRESSION (e.g. --alpha='choice(0.1, 0.3)'), got {text!r}")
    return name, expression


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def _tag(text: str) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value if sep else None


def _add_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("-f", "--file", type=Path, default=default, metavar="SWEEP",
                   help="a sweep file, YAML or JSON, with the keys these options name")
    p.add_argument("-e", "--experiment", default=default, metavar="NAME", help="the experiment of the sweep's run")
    p.add_argument("--source-directory", type=Path, default=default, metavar="DIR",
                   help="the trials' working directory; SCRIPT is relative to it (default: .)")
    p.add_argument("--sampling", choices=("grid", "random"), default=default, help="grid (every combination) or "
                   "random")
    p.add_argument("--seed", type=int, default=default, metavar="N", help="random sampling's seed")
    p.add_argument("--param", type=_param, action="append", default=default, metavar="NAME=EXPR",
                   help="a sampled parameter, e.g. --param '--lr=loguniform(-6, -1)' (repeatable)")
    p.add_argument("--primary-metric-name", default=default, metavar="NAME", help="the metric the script logs")
    p.add_argument("--primary-metric-goal", choices=("maximize", "minimize"), type=str.lower, default=default)
    p.add_argument("--max-total-runs", type=int, default=default, metavar="N")
    p.add_argument("--max-concurrent-runs", type=int, default=default, metavar="N")
    p.add_argument("--max-duration-minutes", type=float, default=default, metavar="M")
    p.add_argument("--policy", default=default, metavar="POLICY",
                   help="e.g. 'bandit(slack_factor=0.1, evaluation_interval=2)', 'median_stopping()', "
                        "'truncation_selection(20)' (default: none)")
    p.add_argument("--env", type=_env_pair, action="append", default=default, metavar="NAME=VALUE",
                   help="an extra environment variable of every trial (repeatable)")
    p.add_argument("--tag", type=_tag, action="append", default=default, metavar="KEY=VALUE",
                   help="a tag of the sweep's run (repeatable)")
    p.add_argument("--no-table", action="store_true", default=default, help="do not print the trial table")


def register(subparsers: Any) -> None:
    """Add ``sweep``."""
    p = subparsers.add_parser(
        "sweep", help="run a hyperparameter sweep of a script (Azure ML's HyperDrive): trials as child runs",
        description=("Start a sweep of SCRIPT: the sweep is a run of --experiment, each trial a child run "
                     "started as SCRIPT ARGS plus its sampled parameters, at most --max-concurrent-runs at once, "
                     "stopped early by --policy as the primary metric says. Options and a --file have the same "
                     "keys. Ctrl-C cancels the sweep (and every running trial)."),
    )
    _add_options(p, suppress=False)
    p.add_argument("script", nargs="?", metavar="SCRIPT", help="the Python script (or the file's 'script')")
    p.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's fixed arguments")
    p.set_defaults(handler=_sweep)


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--param --alpha=...``: the value starts with a dash, which argparse takes for an option; glue it on."""
    out: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        if words[i] == "--param" and i + 1 < len(words):
            out.append(f"--param={words[i + 1]}")
            i += 2
            continue
        if words[i] == "--":
            out.extend(words[i:])
            break
        out.append(words[i])
        i += 1
    return out


def _split_script_args(args: argparse.Namespace) -> list[str]:
    """Take our own options out of what followed SCRIPT; the rest (and all after ``--``) is the script's."""
    rest: list[str] = list(args.arguments or [])
    head, tail = rest, []
    if "--" in rest:
        cut = rest.index("--")
        head, tail = rest[:cut], rest[cut + 1:]
    extra = argparse.ArgumentParser(prog="runstream sweep", add_help=False, allow_abbrev=False)
    _add_options(extra, suppress=True)
    found, script_args = extra.parse_known_args(normalize_argv(head))
    for name, value in vars(found).items():
        if isinstance(value, list) and getattr(args, name, None):
            setattr(args, name, getattr(args, name) + value)
        else:
            setattr(args, name, value)
    return script_args + tail


def read_sweep_file(path: Path) -> dict[str, Any]:
    """A sweep file's mapping: JSON (``.json``) or YAML (anything else)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the sweep file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}: not JSON: {exc}") from None
    else:
        import yaml  # only this command needs it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a sweep file holds one mapping of the keys {', '.join(SWEEP_KEYS)}")
    return data


def sweep_mapping(args: argparse.Namespace, script_args: list[str]) -> tuple[dict[str, Any], Path]:
    """The sweep's keys: the file's, overridden by the options; and the folder relative paths start from."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if getattr(args, "file", None):
        data = read_sweep_file(args.file)
        base = args.file.resolve().parent
    for key in _SCALAR_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    if getattr(args, "source_directory", None) is not None:
        data["source_directory"] = str(Path.cwd() / args.source_directory)
    elif "source_directory" not in data and args.file and args.script:
        data["source_directory"] = str(Path.cwd())  # a SCRIPT named on the command line is found from here
    if args.script:
        data["script"] = args.script
        data["arguments"] = script_args
    elif script_args:
        data["arguments"] = script_args
    if getattr(args, "param", None):
        data["parameters"] = {**(data.get("parameters") or {}), **dict(args.param)}
    if getattr(args, "env", None):
        data["environment"] = {**(data.get("environment") or {}), **dict(args.env)}
    return data, base


def _say(message: str) -> None:
    print(f"runstream: {message}", file=sys.stderr, flush=True)


def _sweep(args: argparse.Namespace) -> int:
    script_args = _split_script_args(args)
    try:
        data, base = sweep_mapping(args, script_args)
        spec = sweep_from_mapping(data, base_dir=base)
        experiment_name = spec.experiment or "sweep"
        workspace = Workspace.default()
        hd_run = spec.config.submit_to(Experiment(workspace, experiment_name), tags=dict(args.tag or []))
    except PipelineError as exc:
        _say(f"sweep: {exc}")
        return 2
    config = spec.config
    _say(f"sweep {hd_run.id} started (experiment {experiment_name}; {config.total_runs} trials at most); "
         f"`runstream logs {hd_run.id} --stream logging` shows its decisions")
    try:
        details = hd_run.wait_for_completion(show_output=not args.no_table, raise_on_error=False)
    except KeyboardInterrupt:
        _say(f"sweep {hd_run.id} Canceled (interrupted)")
        return 130
    status = details.get("status", "")
    best = hd_run.get_best_run_by_primary_metric()
    if best is not None:
        ranked = hd_run.get_children_sorted_by_primary_metric(top=1)
        _say(f"best trial {best.id}: {config.primary_metric_name} {ranked[0]['best_primary_metric']:g} "
             f"with {json.dumps(ranked[0]['hyperparameters'])}")
    error = (details.get("error") or {}).get("message")
    _say(f"sweep {hd_run.id} {status}" + (f": {error}" if error and status != "Completed" else ""))
    return {"Completed": 0, "Canceled": 130}.get(status, 1)
