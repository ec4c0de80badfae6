"""The same logging loop in the usual trackers: wandb (offline) and mlflow (default local store).

Runner side: :func:`measure` runs each peer in its own child process whose
working directory is a scratch folder under ``bench/.scratch`` (so ``wandb/``
and ``mlflow.db`` never land in the repo). Child side: ``python -m bench.peers
wandb|mlflow --calls N --trials T`` prints the mean seconds per call of each
trial. Loops are bounded: mlflow writes one sqlite transaction per call
(about 10 ms here), so a few hundred calls give a stable mean.

Keys: ``vs_wandb_log_speedup``, ``vs_mlflow_log_speedup`` (peer time / our time).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .child import emit, ready_then_wait, run_child

__all__ = ["measure"]


def measure(scratch: Path, *, trials: int, wandb_calls: int, mlflow_calls: int) -> dict[str, Any]:
    """Seconds per call of each peer, one list per peer (one entry per trial), plus versions."""
    out: dict[str, Any] = {}
    for peer, calls in (("wandb", wandb_calls), ("mlflow", mlflow_calls)):
        folder = scratch / f"peer-{peer}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(folder),
               "WANDB_CACHE_DIR": str(folder / "cache"), "WANDB_CONFIG_DIR": str(folder / "config"),
               "WANDB_DATA_DIR": str(folder / "data"), "MLFLOW_TRACKING_URI": "",
               "GIT_PYTHON_REFRESH": "quiet"}
        out[peer] = run_child("bench.peers", [peer, "--calls", str(calls), "--trials", str(trials)], cwd=folder,
                              env=env, timeout=240)
    return out


def _wandb(args: argparse.Namespace) -> dict[str, Any]:
    import wandb

    run = wandb.init(project="runstream-bench", mode="offline", dir=os.environ.get("WANDB_DIR"))
    run.log({"loss": 0.0})
    ready_then_wait()
    per_call = []
    log = run.log
    for _ in range(args.trials):
        t0 = time.perf_counter()
        for _ in range(args.calls):
            log({"loss": 0.5})
        per_call.append((time.perf_counter() - t0) / args.calls)
    t0 = time.perf_counter()
    run.finish()
    return {"s_per_call": per_call, "calls": args.calls, "finish_s": time.perf_counter() - t0,
            "version": wandb.__version__}


def _mlflow(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow

    uri = mlflow.get_tracking_uri()  # the default: sqlite:///<cwd>/mlflow.db on MLflow 3
    mlflow.start_run()
    mlflow.log_metric("loss", 0.0, step=0)
    ready_then_wait()
    per_call = []
    log_metric = mlflow.log_metric
    step = 1
    for _ in range(args.trials):
        t0 = time.perf_counter()
        for _ in range(args.calls):
            log_metric("loss", 0.5, step=step)
            step += 1
        per_call.append((time.perf_counter() - t0) / args.calls)
    mlflow.end_run()
    return {"s_per_call": per_call, "calls": args.calls, "tracking_uri": uri, "version": mlflow.__version__}


def _main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")  # peers' deprecation chatter is not ours to fix
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("peer", choices=["wandb", "mlflow"])
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # an empty value would not mean "default" to every version
    emit(_wandb(args) if args.peer == "wandb" else _mlflow(args))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
