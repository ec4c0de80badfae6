"""runstream demo: a small hyper-parameter sweep on the embedded default (no servers).

    make demo                       # or: .venv/bin/python examples/sweep_demo.py

Eight training runs start in parallel processes. Each logs with the Azure-ML-style
API: scalar curves (``run.log``), a row metric (``run.log_row``), a table
(``run.log_table``) and a matplotlib image (``run.log_image``). Everything goes to
the local spool under ``./.runstream``; the demo then ingests the spool into chDB
(the embedded ClickHouse engine) and prints a leaderboard read back through the
same ``Run`` objects, plus where the data lives and how to query it.

Nothing is configured: no Kafka, no ClickHouse server, no environment variables.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import sys
import time
import uuid
from pathlib import Path

# Run from a checkout without `pip install -e .` too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.service import IngestService  # noqa: E402
from producers import Experiment, Run, Workspace  # noqa: E402
from schemas.settings import IngestSettings  # noqa: E402

EXPERIMENT = "sweep-demo"
METRIC = "val_accuracy"
EPOCHS = 30
GRID = [(lr, wd) for lr in (0.3, 0.1, 0.03, 0.01) for wd in (0.0, 1e-4)]  # 8 runs

# The demo is the embedded default on purpose: settings that point elsewhere are ignored.
for _var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG"):
    os.environ.pop(_var, None)


def say(message: str) -> None:
    print(message, flush=True)


def train(home: str, sweep_id: str, lr: float, wd: float, seed: int) -> tuple[str, float]:
    """One run of the sweep (a child process): a simulated training curve, logged as Azure ML would."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = random.Random(seed)
    # Too high a learning rate diverges a little, too low converges slowly; weight decay helps a bit.
    speed = lr * 12 if lr <= 0.1 else 1.2 - lr
    ceiling = 0.97 - abs(math.log10(lr) + 1.3) * 0.05 + (0.01 if wd else 0.0)
    with Workspace(home=home) as ws:
        run = Experiment(ws, EXPERIMENT).start_logging(
            display_name=f"lr={lr:g} wd={wd:g}",
            tags={"sweep": sweep_id, "lr": f"{lr:g}", "weight_decay": f"{wd:g}"},
            properties={"epochs": str(EPOCHS), "seed": str(seed)},
        )
        losses, accuracies = [], []
        for epoch in range(EPOCHS):
            progress = 1 - math.exp(-speed * (epoch + 1) / 4)
            loss = 2.3 * (1 - progress) + 0.05 + rng.gauss(0, 0.02)
            accuracy = min(0.999, ceiling * progress + rng.gauss(0, 0.005))
            run.log("loss", loss, description="training loss")
            run.log(METRIC, accuracy, description="validation accuracy")
            run.log_row("lr_schedule", epoch=epoch, lr=lr * 0.5 * (1 + math.cos(math.pi * epoch / EPOCHS)))
            losses.append(loss)
            accuracies.append(accuracy)
        run.log("optimizer", "sgd")
        run.log_list("final_layer_norms", [rng.uniform(0.5, 2.0) for _ in range(8)])
        labels = ["cat", "dog", "bird"]
        run.log_table("confusion_matrix", {
            "label": labels,
            "correct": [int(100 * accuracies[-1]) + rng.randint(-3, 3) for _ in labels],
            "wrong": [int(100 * (1 - accuracies[-1])) + rng.randint(0, 3) for _ in labels],
        })
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(losses, label="loss")
        ax.plot(accuracies, label=METRIC)
        ax.set_xlabel("epoch")
        ax.set_title(f"lr={lr:g} wd={wd:g}")
        ax.legend()
        run.log_image("curves", plot=fig)
        plt.close(fig)
        run.complete()
        return run.id, accuracies[-1]


def _leaderboard(home: Path, sweep_id: str) -> Run:
    """Read the sweep back through the same Run API, rank the runs, print the board; returns the best run."""
    with Workspace(home=home) as ws:
        experiment = Experiment(ws, EXPERIMENT)
        board = []
        for run in experiment.get_runs():
            if run.get_tags().get("sweep") != sweep_id:
                continue
            metrics = run.get_metrics()
            curve = metrics[METRIC]
            board.append((curve[-1], max(curve), metrics["loss"][-1], run))
        board.sort(key=lambda row: row[0], reverse=True)
        say("")
        say(f"Leaderboard: final {METRIC} per run (sweep {sweep_id})")
        say(f"{'rank':>4}  {'run':<38} {'params':<18} {'final':>7} {'best':>7} {'loss':>7}  status")
        for rank, (final, best, loss, run) in enumerate(board, 1):
            say(f"{rank:>4}  {run.id:<38} {run.display_name or '':<18} {final:>7.4f} {best:>7.4f} {loss:>7.4f}  "
                f"{run.get_status()}")
        best_run = board[0][3]
        extras = best_run.get_metrics()
        say("")
        say(f"Best run {best_run.id}: also logged lr_schedule (row metric, columns {sorted(extras['lr_schedule'])}), "
            f"confusion_matrix (table), curves (image {extras['curves']}), files {best_run.get_file_names()}")
        return best_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=".runstream", help="runstream home for the demo (default: ./.runstream)")
    parser.add_argument("--processes", type=int, default=len(GRID), help="parallel training processes (default: 8)")
    args = parser.parse_args()
    home = Path(args.home).absolute()
    started = time.monotonic()
    sweep_id = uuid.uuid4().hex[:8]
    say(f"runstream demo: sweep {sweep_id}, {len(GRID)} runs in {args.processes} parallel processes, "
        f"embedded mode (spool + chDB under {home})")

    # 1. The sweep: each run logs to the spool from its own process.
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate training jobs would be
    with context.Pool(args.processes) as pool:
        pending = [pool.apply_async(train, (str(home), sweep_id, lr, wd, seed))
                   for seed, (lr, wd) in enumerate(GRID)]
        for done, result in enumerate(pending, 1):
            run_id, final = result.get(timeout=300)
            say(f"  [{done}/{len(GRID)}] {run_id} finished ({METRIC} {final:.4f})")
    say(f"sweep logged in {time.monotonic() - started:.1f}s; spool: {home / 'spool'}")

    # 2. Ingest: what `runstream ingest` does, once, in this process. While the service is open
    # this process owns the home, and the reads below ask it over the home's query socket.
    t0 = time.monotonic()
    say("ingesting the spool into chDB (validation, per-run limits, exactly-once writes)...")
    service = IngestService(IngestSettings(home=home, metrics_port=None), progress=lambda m: say(f"  {m}"))
    try:
        service.start()
        service.run(until_idle_s=0.3, report_every_s=5.0)
        ingested = service.worker.committed_messages if service.worker else 0
        say(f"  {ingested} messages ingested in {time.monotonic() - t0:.1f}s")
        best_run = _leaderboard(home, sweep_id)
    finally:
        service.close()

    say("")
    say(f"Where the data lives (delete the folder to start over):")
    say(f"  {home / 'spool'}   event log the runs wrote (ingested segments are removed)")
    say(f"  {home / 'chdb'}    chDB database 'runstream' (tables metric_scalars, metric_rows, run_status, ...)")
    say(f"  {home / 'deadletter'}   anything ingest rejected, with the reason")
    say("How to query it:")
    say(f"  Python:  from producers import Workspace, Experiment, Run")
    say(f"           run = Run(Experiment(Workspace(home={str(home)!r}), {EXPERIMENT!r}), {best_run.id!r})")
    say(f"           run.get_metrics()   # also get_details(), get_tags(), download_file(...)")
    say(f"  SQL:     .venv/bin/python -c \"from chdb import session; print(session.Session('{home / 'chdb'}')"
        f".query('SELECT run_id, argMax(value, step) AS final FROM runstream.metric_scalars "
        f"WHERE name = \\'{METRIC}\\' GROUP BY run_id ORDER BY final DESC', 'PrettyCompact'))\"")
    say(f"  Keep ingesting as runs log:  .venv/bin/runstream ingest --home {home}")
    say(f"demo finished in {time.monotonic() - started:.1f}s")
    say("")
    say("See the runs in the web UI (runs table, charts, compare, sweep view), then open http://127.0.0.1:5000/ :")
    say(f"  .venv/bin/runstream server --home {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
