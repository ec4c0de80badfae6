"""Codec figure: Avro encode + decode of scalar batches, one thread.

Key: ``codec_points_per_s``. The batches look like the SDK's: 16,384 points
(``batch_points``' default), 5 metric names, increasing steps and times,
float values. Encode and decode are timed separately; the figure is points
over their sum (a point is encoded once by the SDK and decoded once by ingest).
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["measure", "scalar_batches"]


def scalar_batches(points: int, *, batch: int = 16_384, names: int = 5) -> list[Any]:
    """ScalarBatch records holding ``points`` points in batches of ``batch``."""
    from schemas import ScalarBatch

    metric_names = [f"metric_{i}" for i in range(names)]
    t0 = 1_800_000_000_000
    out = []
    for seq, start in enumerate(range(0, points, batch), start=2):
        n = min(batch, points - start)
        idx = [(start + i) % names for i in range(n)]
        steps = [(start + i) // names for i in range(n)]
        out.append(ScalarBatch(writer_id="bench-writer", seq=seq, run_id="bench-run", experiment="bench",
                               created_ms=t0, names=metric_names, descriptions=[""] * names, name_idx=idx,
                               steps=steps, times_ms=[t0 + s for s in steps],
                               values=[math.sin(s / 100.0) + i for i, s in zip(idx, steps)]))
    return out


def measure(*, trials: int, points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of ``codec_points_per_s`` plus encode-only and decode-only rates."""
    import schemas

    batches = scalar_batches(points)
    rates, enc_rates, dec_rates = [], [], []
    size = 0
    for _ in range(trials):
        t0 = time.perf_counter()
        encoded = [schemas.encode(b) for b in batches]
        t1 = time.perf_counter()
        for data in encoded:
            schemas.decode(data)
        t2 = time.perf_counter()
        rates.append(points / (t2 - t0))
        enc_rates.append(points / (t1 - t0))
        dec_rates.append(points / (t2 - t1))
        size = sum(len(d) for d in encoded)
    return ({"codec_points_per_s": rates},
            {"points_per_trial": points, "batch_points": 16_384, "encode_points_per_s": enc_rates,
             "decode_points_per_s": dec_rates, "bytes_per_point": size / points})
