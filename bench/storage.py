"""Stored size of a scalar point: ``metric_scalars``' compressed bytes on disk per row, from ``system.parts``.

Key: ``stored_bytes_per_point``. Measured on the e2e database after the
throughput trials (after their merges settled), so it is the size of what the
real pipeline wrote, sorted and merged as the server keeps it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["measure"]


def measure(stack: Any, database: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """``stored_bytes_per_point`` of ``database``.metric_scalars (one value: the parts are what they are)."""
    client = stack.client(database)
    try:
        try:  # 18.16 names the compressed size `bytes`; modern servers `bytes_on_disk` (`bytes` is an alias there)
            rows = client.execute(
                "SELECT sum(rows), sum(bytes), count() FROM system.parts "
                "WHERE database = %(db)s AND table = 'metric_scalars' AND active", {"db": database})
        except Exception:
            rows = client.execute(
                "SELECT sum(rows), sum(bytes_on_disk), count() FROM system.parts "
                "WHERE database = %(db)s AND table = 'metric_scalars' AND active", {"db": database})
    finally:
        client.disconnect()
    points, size, parts = (int(v or 0) for v in rows[0])
    per_point = size / points if points else float("nan")
    return {"stored_bytes_per_point": [per_point]}, {"rows": points, "bytes": size, "active_parts": parts}
