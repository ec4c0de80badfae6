"""Codec figure: scalar batches from the SDK's columnar buffer to ingest's arrays and back, one thread.

Keys: ``codec_points_per_s``, ``wire_bytes_per_point``. The batches look like
the SDK's: 16,384 points (``batch_points``' default), 5 metric names,
increasing steps, times from the clock, float values. *Encode* is what the
SDK's emitter thread does per batch: the buffer's arrays to packed bytes
(``tobytes``; steps and times byte-stream split), the record, :func:`schemas.encode`. *Decode* is what ingest
does: :func:`schemas.decode`, then the points as numpy arrays
(:func:`consumers.columns.scalar_columns`). The figure is points over the sum
(a point is encoded once and decoded once). The version-1 layout (Avro
arrays) is timed the same way for comparison (``details``).

``wire_bytes_per_point``: the encoded messages compressed with lz4 as the
SDK's Kafka producer sends them (one message per lz4 frame, a bound on what a
record batch holds); the uncompressed size is in ``details``.
"""

from __future__ import annotations

import math
import time
from array import array
from typing import Any

__all__ = ["measure", "sdk_buffers", "scalar_batches"]

_NAMES = 5
_BATCH = 16_384
_T0 = 1_800_000_000.0


def sdk_buffers(points: int, *, batch: int = _BATCH, names: int = _NAMES) -> list[tuple[array[int], array[int],
                                                                                         array[float], array[float]]]:
    """The emitter's per-segment buffers (name index, step, time in seconds, value) for ``points`` points."""
    out = []
    for start in range(0, points, batch):
        n = min(batch, points - start)
        idx = array("i", [(start + i) % names for i in range(n)])
        steps = array("q", [(start + i) // names for i in range(n)])
        times = array("d", [_T0 + (start + i) * 1e-6 for i in range(n)])
        values = array("d", [math.sin(s / 100.0) + i for i, s in zip(idx, steps)])
        out.append((idx, steps, times, values))
    return out


def _packed(seq: int, buffers: tuple[Any, ...], names: list[str]) -> Any:
    from schemas import ScalarBatch

    from schemas.packing import split_planes

    idx, steps, times, values = buffers
    return ScalarBatch(writer_id="bench-writer", seq=seq, run_id="bench-run", experiment="bench",
                       created_ms=int(_T0 * 1000), names=names, descriptions=[""] * len(names), text_pos=[],
                       text_values=[], packed_name_idx=idx.tobytes(), packed_steps=split_planes(steps.tobytes(), 8),
                       packed_times=split_planes(times.tobytes(), 8), packed_values=values.tobytes())


def _lists(seq: int, buffers: tuple[Any, ...], names: list[str]) -> Any:
    from schemas import ScalarBatch

    idx, steps, times, values = buffers
    return ScalarBatch(writer_id="bench-writer", seq=seq, run_id="bench-run", experiment="bench",
                       created_ms=int(_T0 * 1000), names=names, descriptions=[""] * len(names), name_idx=idx.tolist(),
                       steps=steps.tolist(), times_ms=list(map(int, map((1000.0).__mul__, times))),
                       values=values.tolist())


def scalar_batches(points: int, *, batch: int = _BATCH, packed: bool = True) -> list[Any]:
    """ScalarBatch records holding ``points`` points in batches of ``batch`` (the SDK's size by default)."""
    names = [f"metric_{i}" for i in range(_NAMES)]
    build = _packed if packed else _lists
    return [build(seq, b, names) for seq, b in enumerate(sdk_buffers(points, batch=batch), start=2)]


def _trial(buffers: list[Any], names: list[str], points: int, *, packed: bool) -> tuple[float, float, list[bytes]]:
    import schemas
    from consumers.columns import scalar_columns

    build = _packed if packed else _lists
    t0 = time.perf_counter()
    encoded = [schemas.encode(build(seq, b, names)) for seq, b in enumerate(buffers, start=2)]
    t1 = time.perf_counter()
    for data in encoded:
        columns = scalar_columns(schemas.decode(data))  # type: ignore[arg-type]
        assert len(columns.values)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, encoded


def measure(*, trials: int, points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of ``codec_points_per_s`` (packed) and ``wire_bytes_per_point``, with version 1 for comparison."""
    import lz4.frame

    buffers = sdk_buffers(points)
    names = [f"metric_{i}" for i in range(_NAMES)]
    rates, enc_rates, dec_rates, v1_rates = [], [], [], []
    encoded: list[bytes] = []
    v1: list[bytes] = []
    for _ in range(trials):
        enc, dec, encoded = _trial(buffers, names, points, packed=True)
        rates.append(points / (enc + dec))
        enc_rates.append(points / enc)
        dec_rates.append(points / dec)
        enc, dec, v1 = _trial(buffers, names, points, packed=False)
        v1_rates.append(points / (enc + dec))
    raw = sum(len(d) for d in encoded) / points
    wire = sum(len(lz4.frame.compress(d)) for d in encoded) / points
    return ({"codec_points_per_s": rates, "wire_bytes_per_point": [wire] * trials},
            {"points_per_trial": points, "batch_points": _BATCH, "encode_points_per_s": enc_rates,
             "decode_points_per_s": dec_rates, "bytes_per_point": raw, "lz4_bytes_per_point": wire,
             "v1_codec_points_per_s": v1_rates, "v1_bytes_per_point": sum(len(d) for d in v1) / points,
             "v1_lz4_bytes_per_point": sum(len(lz4.frame.compress(d)) for d in v1) / points})
