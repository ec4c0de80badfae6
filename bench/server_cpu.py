"""Where the ClickHouse server's CPU goes: inserts, background merges, and the bench's own queries.

Used by the e2e throughput trials (``clickhouse_cpu_us_per_point``). The split
reads the server process from ``/proc`` (Linux; the server runs on this
machine):

- **total**: the process's user + system time;
- **merges**: the threads the server names ``BackgrProcPool`` (18.16) or
  ``BgSchPool``/``MergeMutate``/``Merge*`` (modern servers): background
  merges and part cleanup;
- **queries**: the bench's own queries, tagged with a ``query_id`` prefix and
  summed from ``system.query_log`` (``OSCPUVirtualTimeMicroseconds``) after
  ``SYSTEM FLUSH LOGS``;
- **inserts**: the rest (the handlers that parse and write the inserted
  blocks, and whatever small housekeeping the server does meanwhile).

Threads that end between two snapshots take their time out of the per-thread
sums but not out of the process total, so inserts may absorb a little of
another category; the server's thread pools are long-lived, so it is small.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["CpuSnapshot", "snapshot", "tagged_query", "queries_cpu_s", "wait_for_merges", "QUERY_TAG"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_MERGE_THREADS = ("BackgrProcPool", "BgSchPool", "BgMoveProcPool", "MergeMutate", "MergeTree")

QUERY_TAG = "rsbench-"
"""Prefix of the ``query_id`` of every query the bench sends while measuring the server."""


def _cpu_of(stat_path: str) -> float:
    with open(stat_path, encoding="ascii") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds used so far by the server process and by its merge threads."""

    total_s: float
    merges_s: float
    at: float

    def __sub__(self, other: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(self.total_s - other.total_s, self.merges_s - other.merges_s, self.at - other.at)


def snapshot(pid: int | None) -> CpuSnapshot:
    """The server's CPU so far (NaN when it cannot be read: no pid, not Linux, another user's process)."""
    if pid is None:
        return CpuSnapshot(float("nan"), float("nan"), time.monotonic())
    try:
        total = _cpu_of(f"/proc/{pid}/stat")
        merges = 0.0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8", errors="replace") as f:
                    comm = f.read().strip()
                if comm.startswith(_MERGE_THREADS):
                    merges += _cpu_of(f"/proc/{pid}/task/{tid}/stat")
            except OSError:
                continue  # the thread ended meanwhile
    except OSError:
        return CpuSnapshot(float("nan"), float("nan"), time.monotonic())
    return CpuSnapshot(total, merges, time.monotonic())


def tagged_query(client: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    """Run one of the bench's queries with a tagged ``query_id`` and query logging on."""
    return client.execute(sql, params, query_id=QUERY_TAG + uuid.uuid4().hex, settings={"log_queries": 1})


def queries_cpu_s(client: Any, since_epoch_s: float) -> float:
    """CPU seconds of the bench's tagged queries that started after ``since_epoch_s`` (NaN if not readable)."""
    try:
        client.execute("SYSTEM FLUSH LOGS")
        rows = client.execute(
            "SELECT sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'OSCPUVirtualTimeMicroseconds')]) "
            "FROM system.query_log WHERE type = 2 AND startsWith(query_id, %(tag)s) "
            "AND query_start_time >= toDateTime(%(since)s)",
            {"tag": QUERY_TAG, "since": int(since_epoch_s)})
    except Exception:
        try:  # modern servers: ProfileEvents is a Map
            rows = client.execute(
                "SELECT sum(ProfileEvents['OSCPUVirtualTimeMicroseconds']) FROM system.query_log "
                "WHERE type = 'QueryFinish' AND startsWith(query_id, %(tag)s) "
                "AND query_start_time >= toDateTime(%(since)s)",
                {"tag": QUERY_TAG, "since": int(since_epoch_s)})
        except Exception:
            return float("nan")
    return float(rows[0][0] or 0) / 1e6


def wait_for_merges(client: Any, database: str, *, quiet_s: float = 1.0, timeout_s: float = 60.0) -> float:
    """Wait until no merge of ``database`` has run for ``quiet_s`` (bounded); returns the seconds waited."""
    start = time.monotonic()
    last_busy = start
    while time.monotonic() - start < timeout_s:
        running = client.execute("SELECT count() FROM system.merges WHERE database = %(db)s", {"db": database})[0][0]
        now = time.monotonic()
        if running:
            last_busy = now
        elif now - last_busy >= quiet_s:
            break
        time.sleep(0.1)
    return time.monotonic() - start
