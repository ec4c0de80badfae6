"""Small builders of events and messages for the consumer tests."""

from __future__ import annotations

import itertools
import math
from array import array

import schemas
from consumers.message import RawMessage
from schemas import (
    Column,
    FileChunk,
    Heartbeat,
    ImageLogged,
    ListLogged,
    LogBatch,
    LogLine,
    PropertiesSet,
    RowLogged,
    RunStarted,
    RunStatusChanged,
    ScalarBatch,
    TableLogged,
    TagsSet,
)
from schemas.packing import split_planes

T0 = 1_764_300_000_000
_seq = itertools.count(1)


def env(run_id: str = "run_1", *, seq: int | None = None, writer_id: str = "w1", experiment: str = "exp",
        created_ms: int = T0) -> dict:
    return dict(writer_id=writer_id, seq=seq if seq is not None else next(_seq), run_id=run_id,
                experiment=experiment, created_ms=created_ms)


def scalars(run_id: str = "run_1", names: list[str] | None = None, points: int = 3, *, text: dict[int, str] | None = None,
            start_step: int = 0, packed: bool = False, **kw) -> ScalarBatch:
    """``points`` points per name, interleaved: name i, step s; ``packed`` for the SDK's (version 2) layout."""
    names = names or ["loss"]
    name_idx, steps, times, values = [], [], [], []
    for s in range(points):
        for i in range(len(names)):
            name_idx.append(i)
            steps.append(start_step + s)
            times.append(T0 + s)
            values.append(float(s) + i / 10)
    text = text or {}
    for pos in text:
        values[pos] = math.nan
    if packed:
        return ScalarBatch(**env(run_id, **kw), names=list(names), descriptions=[""] * len(names),
                           packed_name_idx=array("i", name_idx).tobytes(),
                           packed_steps=split_planes(array("q", steps).tobytes(), 8),
                           packed_times=split_planes(array("d", [t / 1000 for t in times]).tobytes(), 8),
                           packed_values=array("d", values).tobytes(), text_pos=list(text),
                           text_values=list(text.values()))
    return ScalarBatch(**env(run_id, **kw), names=list(names), descriptions=[""] * len(names), name_idx=name_idx,
                       steps=steps, times_ms=times, values=values, text_pos=list(text), text_values=list(text.values()))


def started(run_id: str = "run_1", **kw) -> RunStarted:
    tags = kw.pop("tags", {"team": "vision", "flag": None})
    properties = kw.pop("properties", {"lr": "0.1"})
    return RunStarted(**env(run_id, **kw), display_name="d", tags=tags, properties=properties, host="h", pid=1)


def status(run_id: str = "run_1", value: str = "Completed", error: str | None = None, **kw) -> RunStatusChanged:
    return RunStatusChanged(**env(run_id, **kw), status=value, error_details=error)


def tags(run_id: str = "run_1", values: dict | None = None, **kw) -> TagsSet:
    return TagsSet(**env(run_id, **kw), tags=values if values is not None else {"a": "1"})


def properties(run_id: str = "run_1", values: dict | None = None, **kw) -> PropertiesSet:
    return PropertiesSet(**env(run_id, **kw), properties=values if values is not None else {"p": "1"})


def heartbeat(run_id: str = "run_1", **kw) -> Heartbeat:
    return Heartbeat(**env(run_id, **kw), interval_ms=30_000)


def list_logged(run_id: str = "run_1", name: str = "accs", values=(0.5, 0.75), **kw) -> ListLogged:
    return ListLogged(**env(run_id, **kw), name=name, description="", values=Column(name, list(values)))


def row(run_id: str = "run_1", name: str = "xy", **cells) -> RowLogged:
    kw = {k: cells.pop(k) for k in ("seq", "writer_id", "experiment", "created_ms") if k in cells}
    cols = [Column(k, [math.nan], [0], [v]) if isinstance(v, str) else Column(k, [float(v)]) for k, v in cells.items()]
    return RowLogged(**env(run_id, **kw), name=name, description="", columns=cols)


def table(run_id: str = "run_1", name: str = "cm", columns: dict | None = None, **kw) -> TableLogged:
    columns = columns or {"label": ["cat", "dog"], "count": [3, 4]}
    cols = []
    for k, vals in columns.items():
        if all(isinstance(v, str) for v in vals):
            cols.append(Column(k, [math.nan] * len(vals), list(range(len(vals))), list(vals)))
        else:
            cols.append(Column(k, [float(v) for v in vals]))
    return TableLogged(**env(run_id, **kw), name=name, description="", columns=cols)


def image(run_id: str = "run_1", name: str = "roc", size: int = 10, **kw) -> ImageLogged:
    return ImageLogged(**env(run_id, **kw), name=name, description="", file_path=f"images/{name}/x.png",
                       content_type="image/png", size=size)


def chunk(run_id: str = "run_1", data: bytes = b"abc", **kw) -> FileChunk:
    import hashlib

    return FileChunk(**env(run_id, **kw), path="outputs/a.bin", upload_id="u1", chunk_index=0, chunk_count=1,
                     total_size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="application/x",
                     data=data)


def logs(run_id: str = "run_1", messages=("one", "two"), **kw) -> LogBatch:
    return LogBatch(**env(run_id, **kw), lines=[LogLine(T0 + i, "stdout", "", 20, m) for i, m in enumerate(messages)])


_offsets = itertools.count()


def message(event_or_bytes, *, key: bytes | None | str = "auto", source: str = "runstream.events/0",
            offset: int | None = None) -> RawMessage:
    if isinstance(event_or_bytes, bytes):
        value = event_or_bytes
        k = None if key == "auto" else key
    else:
        value = schemas.encode(event_or_bytes)
        k = event_or_bytes.run_id.encode() if key == "auto" else key
    return RawMessage(source, 0, offset if offset is not None else next(_offsets), k, value, T0)
