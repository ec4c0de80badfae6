"""Ceiling: the same rows into the ClickHouse server with bare clickhouse-driver.

Key: ``raw_clickhouse_points_per_s``. The e2e workload's points, decoded from
the SDK's own messages into ``metric_scalars`` columns exactly as ingest builds
them (untimed), then inserted with ``Client.execute(INSERT ... VALUES, columns,
columnar=True)`` in batches of ingest's default ``flush_rows`` into a bench
database migrated with the real schema. Only the inserts are timed.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

from schemas.settings import IngestSettings

__all__ = ["measure", "scalar_columns", "COLUMNS"]

COLUMNS = ("experiment", "run_id", "name", "step", "time_ms", "value", "text", "is_text", "writer_id", "seq", "idx",
           "created_ms")
"""The ``metric_scalars`` columns ingest writes."""


def scalar_columns(files: list[Path]) -> dict[str, list[Any]]:
    """``metric_scalars`` columns for every scalar point in the pickled SDK messages."""
    import schemas
    from schemas import ScalarBatch

    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for path in files:
        with open(path, "rb") as f:
            messages = pickle.load(f)
        for _, value in messages:
            e = schemas.decode(value)
            if not isinstance(e, ScalarBatch):
                continue
            name_idx, steps, times_ms, values = e.point_columns()
            k = len(name_idx)
            cols["experiment"] += [e.experiment] * k
            cols["run_id"] += [e.run_id] * k
            cols["name"] += [e.names[i] for i in name_idx]
            cols["step"] += steps
            cols["time_ms"] += times_ms
            cols["value"] += values
            cols["text"] += [""] * k
            cols["is_text"] += [0] * k
            cols["writer_id"] += [e.writer_id] * k
            cols["seq"] += [e.seq] * k
            cols["idx"] += list(range(k))
            cols["created_ms"] += [e.created_ms] * k
    return cols


def measure(stack: Any, files: list[Path], *, trials: int,
            batch_rows: int = IngestSettings().flush_rows) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of the bare-driver insert rate (each trial into a fresh bench database)."""
    from store import open_store

    cols = scalar_columns(files)
    rows = len(cols["step"])
    sql_cols = ", ".join(COLUMNS)
    rates, seconds = [], []
    for t in range(trials):
        database = stack.name(f"rawch{t}")
        store = open_store(stack.url(database), Path("."))
        store.migrate()
        store.close()
        client = stack.client(database)
        sql = f"INSERT INTO `{database}`.metric_scalars ({sql_cols}) VALUES"
        batches = [[cols[c][i:i + batch_rows] for c in COLUMNS] for i in range(0, rows, batch_rows)]
        t0 = time.perf_counter()
        for batch in batches:
            client.execute(sql, batch, columnar=True)
        elapsed = time.perf_counter() - t0
        count = client.execute(f"SELECT count() FROM `{database}`.metric_scalars")[0][0]
        client.execute(f"DROP DATABASE IF EXISTS `{database}`")
        client.disconnect()
        if count != rows:
            raise RuntimeError(f"raw ClickHouse: {count} rows landed of {rows}")
        rates.append(rows / elapsed)
        seconds.append(elapsed)
    return {"raw_clickhouse_points_per_s": rates}, {"rows": rows, "batch_rows": batch_rows, "insert_s": seconds}
