"""Typed records: what one Avro message decodes to, and what producers encode.

One frozen dataclass per ``.avsc`` file in ``avro/``; field names and order
match the schema exactly (the codec relies on it). Dicts stop at the codec:
everything past it handles these records.

Every record starts with the same envelope (``writer_id``, ``seq``,
``run_id``, ``experiment``, ``created_ms``). ``(writer_id, seq)`` names one
message for ever: a re-delivered message carries the same pair, which is how
ClickHouse collapses duplicates.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from .packing import join_planes

__all__ = [
    "RUN_STATUSES",
    "FINAL_STATUSES",
    "Column",
    "LogLine",
    "Event",
    "RunStarted",
    "RunStatusChanged",
    "Heartbeat",
    "TagsSet",
    "PropertiesSet",
    "ScalarBatch",
    "ListLogged",
    "RowLogged",
    "TableLogged",
    "ImageLogged",
    "FileChunk",
    "LogBatch",
    "EVENT_TYPES",
]

RUN_STATUSES = ("Running", "Completed", "Failed", "Canceled")
"""Run statuses as Azure ML spells them."""

FINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled"})


class Column(NamedTuple):
    """One named column. A text cell sits in ``texts``, its index in ``text_pos``, NaN in ``numbers``."""

    name: str
    numbers: list[float]
    text_pos: list[int] = []
    texts: list[str] = []

    def values(self) -> list[float | str]:
        """The cells in order, text cells restored."""
        out: list[float | str] = list(self.numbers)
        for pos, text in zip(self.text_pos, self.texts):
            out[pos] = text
        return out


class LogLine(NamedTuple):
    """One captured output line or Python logging record."""

    time_ms: int
    stream: str  # stdout | stderr | logging
    logger: str
    level: int
    message: str
    exc_text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The envelope every event carries."""

    writer_id: str
    seq: int
    run_id: str
    experiment: str
    created_ms: int

    SCHEMA_NAME: ClassVar[str] = ""
    EVENT_TYPE: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """A run began."""

    parent_run_id: str | None = None
    display_name: str | None = None
    kind: str = "interactive"
    tags: dict[str, str | None] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    host: str = ""
    pid: int = 0

    SCHEMA_NAME: ClassVar[str] = "runstream.events.RunStarted"
    EVENT_TYPE: ClassVar[str] = "run_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStatusChanged(Event):
    """A run's status changed."""

    status: str
    error_details: str | None = None

    SCHEMA_NAME: ClassVar[str] = "runstream.events.RunStatusChanged"
    EVENT_TYPE: ClassVar[str] = "run_status"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Event):
    """The run's process is alive and promises to beat every ``interval_ms``."""

    interval_ms: int

    SCHEMA_NAME: ClassVar[str] = "runstream.events.Heartbeat"
    EVENT_TYPE: ClassVar[str] = "heartbeat"


@dataclass(frozen=True, slots=True, kw_only=True)
class TagsSet(Event):
    """Tags set after start; ``None`` values are valueless tags."""

    tags: dict[str, str | None]

    SCHEMA_NAME: ClassVar[str] = "runstream.events.TagsSet"
    EVENT_TYPE: ClassVar[str] = "tags"


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertiesSet(Event):
    """Properties added after start."""

    properties: dict[str, str]

    SCHEMA_NAME: ClassVar[str] = "runstream.events.PropertiesSet"
    EVENT_TYPE: ClassVar[str] = "properties"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalarBatch(Event):
    """Columnar ``run.log`` points: point ``i`` is ``names[name_idx[i]]`` at ``steps[i]``.

    Two layouts of the same points (schema version 2 carries both):

    * **packed** (what the SDK writes): ``packed_name_idx`` (int32),
      ``packed_steps`` (int64), ``packed_times`` (float64 epoch seconds) and
      ``packed_values`` (float64), little-endian arrays, one item per point,
      steps and times byte-stream split (:mod:`schemas.packing`); written
      and read without a Python object per point. The list fields are empty.
    * **lists** (version 1 writers): ``name_idx``, ``steps``, ``times_ms`` and
      ``values``; the packed fields are empty.

    :meth:`point_columns` reads either layout as plain lists (tools and tests;
    ingest reads the packed bytes with numpy).
    """

    names: list[str]
    descriptions: list[str]
    name_idx: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    times_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    text_pos: list[int] = field(default_factory=list)
    text_values: list[str] = field(default_factory=list)
    packed_name_idx: bytes = b""
    packed_steps: bytes = b""
    packed_times: bytes = b""
    packed_values: bytes = b""

    SCHEMA_NAME: ClassVar[str] = "runstream.events.ScalarBatch"
    EVENT_TYPE: ClassVar[str] = "scalars"

    @property
    def packed(self) -> bool:
        """True when the points travel in the packed fields."""
        return bool(self.packed_name_idx or self.packed_steps or self.packed_times or self.packed_values)

    def __len__(self) -> int:
        return len(self.packed_values) // 8 if self.packed else len(self.name_idx)

    def point_columns(self) -> tuple[list[int], list[int], list[int], list[float]]:
        """``(name_idx, steps, times_ms, values)`` as lists, from either layout.

        Packed times become milliseconds as ingest computes them (``int(seconds * 1000)``).
        ``ValueError`` when packed bytes are not whole items.
        """
        if not self.packed:
            return list(self.name_idx), list(self.steps), list(self.times_ms), list(self.values)
        idx, steps, times, values = array("i"), array("q"), array("d"), array("d")
        idx.frombytes(self.packed_name_idx)
        steps.frombytes(join_planes(self.packed_steps, 8))
        times.frombytes(join_planes(self.packed_times, 8))
        values.frombytes(self.packed_values)
        if sys.byteorder != "little":  # pragma: no cover - every platform we run on is little-endian
            for column in (idx, steps, times, values):
                column.byteswap()
        return idx.tolist(), steps.tolist(), [int(t * 1000.0) for t in times], values.tolist()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListLogged(Event):
    """One ``run.log_list`` call."""

    name: str
    description: str
    values: Column

    SCHEMA_NAME: ClassVar[str] = "runstream.events.ListLogged"
    EVENT_TYPE: ClassVar[str] = "list"


@dataclass(frozen=True, slots=True, kw_only=True)
class RowLogged(Event):
    """One ``run.log_row`` call: each column holds exactly one value."""

    name: str
    description: str
    columns: list[Column]

    SCHEMA_NAME: ClassVar[str] = "runstream.events.RowLogged"
    EVENT_TYPE: ClassVar[str] = "row"


@dataclass(frozen=True, slots=True, kw_only=True)
class TableLogged(Event):
    """One ``run.log_table`` call: equal-length columns."""

    name: str
    description: str
    columns: list[Column]

    SCHEMA_NAME: ClassVar[str] = "runstream.events.TableLogged"
    EVENT_TYPE: ClassVar[str] = "table"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageLogged(Event):
    """One ``run.log_image`` call; the bytes are the file at ``file_path``."""

    name: str
    description: str
    file_path: str
    content_type: str
    size: int

    SCHEMA_NAME: ClassVar[str] = "runstream.events.ImageLogged"
    EVENT_TYPE: ClassVar[str] = "image"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChunk(Event):
    """One chunk (<= 512 KiB by default) of an uploaded file."""

    path: str
    upload_id: str
    chunk_index: int
    chunk_count: int
    total_size: int
    sha256: str
    content_type: str
    data: bytes

    SCHEMA_NAME: ClassVar[str] = "runstream.events.FileChunk"
    EVENT_TYPE: ClassVar[str] = "file_chunk"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogBatch(Event):
    """Captured output lines and logging records, in order."""

    lines: list[LogLine]

    SCHEMA_NAME: ClassVar[str] = "runstream.events.LogBatch"
    EVENT_TYPE: ClassVar[str] = "log"


EVENT_TYPES: tuple[type[Event], ...] = (
    RunStarted,
    RunStatusChanged,
    Heartbeat,
    TagsSet,
    PropertiesSet,
    ScalarBatch,
    ListLogged,
    RowLogged,
    TableLogged,
    ImageLogged,
    FileChunk,
    LogBatch,
)
"""Every record type, one per schema file."""
