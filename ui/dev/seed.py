"""Fill an embedded home with runs of every kind, for the UI's development and tests.

    .venv/bin/python ui/dev/seed.py HOME [--big-points 1000000] [--sweep-runs 24]

Logs through the SDK (the spool under HOME), then ingests the spool into chDB.
Experiments: ``ui-kinds`` (one run logging every kind, one failed run),
``ui-sweep`` (a HyperDrive-like parent with children: params as properties,
``val_accuracy`` curves), ``ui-big`` (one run with ``--big-points`` points of
``loss`` and a single spike of 100.0 at step ``SPIKE_STEP_FRACTION * big_points``).
With ``--clickhouse URL`` the spool is ingested into that server instead.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SPIKE_STEP_FRACTION = 0.54321
SPIKE_VALUE = 100.0


def png_bytes(shade: int) -> bytes:
    """A tiny valid PNG (8x8, one grey level), no imaging library needed."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([shade]) * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def seed(home: Path, *, big_points: int, sweep_runs: int, clickhouse: str | None = None) -> dict[str, str]:
    from producers import Experiment, Workspace
    from producers.log_handler import RunLogHandler

    ids: dict[str, str] = {}
    rng = random.Random(7)
    with Workspace(home=str(home)) as ws:
        kinds = Experiment(ws, "ui-kinds")
        with kinds.start_logging(display_name="every kind", tags={"team": "vision", "baseline": None},
                                 properties={"optimizer": "adam", "lr": "0.01"}) as run:
            ids["kinds"] = run.id
            handler = RunLogHandler(run)
            logger = logging.getLogger("ui-seed")
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            for step in range(200):
                run.log("loss", 1.0 / (step + 1) + 0.01 * rng.random())
                run.log("accuracy", 1 - 1.0 / (step + 2))
                if step % 40 == 0:
                    logger.info("step %d done", step)
            run.log("best_model", "resnet18")
            run.log("final_score", 0.93)
            run.log_list("layer_norms", [0.9, 1.1, 1.3, 1.2, 0.8])
            for epoch in range(20):
                run.log_row("lr_schedule", epoch=epoch, lr=0.01 * 0.9 ** epoch)
            run.log_table("confusion", {"label": ["cat", "dog", "bird"], "correct": [97, 95, 80],
                                        "total": [100, 100, 100]})
            for shade in (40, 120, 220):
                run.log_image("samples", path=_tmp_png(home, shade))
            run.upload_file("outputs/model.txt", io.BytesIO(b"weights\n"))
            logger.warning("finished; warning kept as a logging record")
            logger.removeHandler(handler)
        with kinds.start_logging(display_name="broken") as failed:
            ids["failed"] = failed.id
            failed.log("loss", 3.0)
            failed.fail("ValueError: the data loader ran dry")

        sweep = Experiment(ws, "ui-sweep")
        with sweep.start_logging(display_name="hyperdrive parent", tags={"sweep": "hd1"}) as parent:
            ids["parent"] = parent.id
            for i in range(sweep_runs):
                lr = [0.3, 0.1, 0.03, 0.01][i % 4]
                depth = 2 + i % 5
                child = parent.child_run(name=f"trial {i}")
                child.add_properties({"lr": f"{lr:g}", "depth": str(depth)})
                ceiling = 0.95 - abs(math.log10(lr) + 1.5) * 0.1 - abs(depth - 4) * 0.02
                for step in range(50):
                    child.log("val_accuracy", ceiling * (1 - math.exp(-step / 10)) + 0.005 * rng.random())
                    child.log("loss", 1 - ceiling * (1 - math.exp(-step / 10)))
                child.log_image("grid", path=_tmp_png(home, 20 + 9 * i))
                child.complete()
                ids[f"child{i}"] = child.id

        if big_points:
            big = Experiment(ws, "ui-big")
            spike = int(big_points * SPIKE_STEP_FRACTION)
            with big.start_logging(display_name="1M points") as run:
                ids["big"] = run.id
                log = run.log
                for step in range(big_points):
                    log("loss", SPIKE_VALUE if step == spike else 1.0 + 0.1 * math.sin(step / 5000))
    _ingest(home, clickhouse)
    return ids


def _tmp_png(home: Path, shade: int) -> str:
    path = home / f"seed-{shade}.png"
    path.write_bytes(png_bytes(shade))
    return str(path)


def _ingest(home: Path, clickhouse: str | None) -> None:
    from consumers.service import drain_spool
    from consumers.store import open_store
    from schemas.limits import RunLimits

    store = open_store(clickhouse, home)
    try:
        store.migrate()
        drain_spool(store, home, limits=RunLimits(), deadline=time.monotonic() + 600)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--big-points", type=int, default=1_000_000)
    parser.add_argument("--sweep-runs", type=int, default=24)
    parser.add_argument("--clickhouse", default=None, help="ingest into this server instead of chDB")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ids = seed(args.home, big_points=args.big_points, sweep_runs=args.sweep_runs, clickhouse=args.clickhouse)
    for key, value in ids.items():
        if not key.startswith("child"):
            print(f"{key}: {value}")
    print(f"seeded {args.home} in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
