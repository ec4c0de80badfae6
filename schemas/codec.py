"""Avro single-object encoding of runstream events.

Wire format (Avro spec, "Single object encoding")::

    C3 01 | 8-byte CRC-64-AVRO fingerprint (little endian) | Avro binary body

The fingerprint names the *writer* schema. The decoder looks it up among the
current and every historical schema (``avro/history/``), then reads the body
with the *current* schema of that record as reader schema, so old writers keep
ingesting after an upgrade. Schemas are parsed once, at import.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from .errors import DecodeError, EncodeError
from .records import EVENT_TYPES, Column, Event, LogBatch, LogLine

__all__ = ["MARKER", "MAX_MESSAGE_BYTES", "SCHEMA_DIR", "encode", "decode", "fingerprint_of", "WriterSchema", "writer_schemas"]

MARKER = b"\xc3\x01"
"""The two bytes every single-object-encoded Avro message starts with."""

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Larger inputs are refused before parsing (Kafka's default limit is 1 MiB)."""

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
_HEADER = len(MARKER) + 8
_NESTED: dict[str, Callable[[Any], Any]] = {}


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """One schema a writer may have used: its record class, version label and fingerprint."""

    record: type[Event]
    version: str  # "current" or the history file's stem, e.g. "v1"
    fingerprint: bytes
    parsed: Any
    canonical: str


def fingerprint_of(schema: dict[str, Any]) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema's parsing canonical form."""
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema, _write_hint=False))
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


def _load(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _build_registry(schema_dir: Path) -> tuple[dict[type[Event], WriterSchema], dict[bytes, WriterSchema]]:
    current: dict[type[Event], WriterSchema] = {}
    by_fingerprint: dict[bytes, WriterSchema] = {}
    for record in EVENT_TYPES:
        short = record.SCHEMA_NAME.rsplit(".", 1)[1]
        paths = [("current", schema_dir / f"{short}.avsc")]
        paths += [(p.stem, p) for p in sorted((schema_dir / "history" / short).glob("*.avsc"))]
        for version, path in paths:
            raw = _load(path)
            parsed = fastavro.parse_schema(raw, _write_hint=False)
            canonical = to_parsing_canonical_form(parsed)
            fp = int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")
            entry = WriterSchema(record, version, fp, parsed, canonical)
            if version == "current":
                current[record] = entry
            # The current schema wins when it equals a historical one.
            by_fingerprint.setdefault(fp, entry)
    return current, by_fingerprint


_CURRENT, _BY_FINGERPRINT = _build_registry(SCHEMA_DIR)
_FIELDS = {record: tuple(f["name"] for f in _CURRENT[record].parsed["fields"]) for record in EVENT_TYPES}
# fastavro fills a missing ``bytes`` field with its JSON default as a str; the Avro spec maps its code points
# (0-255) to bytes. These fields get that conversion when an older writer's bytes are read.
_BYTES_DEFAULTS = {record: tuple(f["name"] for f in _CURRENT[record].parsed["fields"]
                                 if f["type"] == "bytes" and "default" in f) for record in EVENT_TYPES}


def writer_schemas() -> list[WriterSchema]:
    """Every schema the decoder accepts (current and historical)."""
    return list(_BY_FINGERPRINT.values())


def _columns_out(columns: list[Column]) -> list[dict[str, Any]]:
    return [c._asdict() for c in columns]


def _to_datum(record: Event) -> dict[str, Any]:
    datum = {name: getattr(record, name) for name in _FIELDS[type(record)]}
    if "columns" in datum:
        datum["columns"] = _columns_out(datum["columns"])
    elif isinstance(record, LogBatch):
        datum["lines"] = [line._asdict() for line in record.lines]
    elif isinstance(datum.get("values"), Column):
        datum["values"] = datum["values"]._asdict()
    return datum


def _from_datum(record: type[Event], datum: dict[str, Any]) -> Event:
    for name in _BYTES_DEFAULTS[record]:
        value = datum[name]
        if isinstance(value, str):
            datum[name] = value.encode("latin-1")
    if "columns" in datum:
        datum["columns"] = [Column(**c) for c in datum["columns"]]
    elif record is LogBatch:
        datum["lines"] = [LogLine(**line) for line in datum["lines"]]
    elif isinstance(datum.get("values"), dict):
        datum["values"] = Column(**datum["values"])
    return record(**datum)


def encode(record: Event) -> bytes:
    """Encode a record as one self-describing message; raises :class:`EncodeError`."""
    entry = _CURRENT.get(type(record))
    if entry is None:
        raise EncodeError(f"not a runstream event: {type(record).__name__}")
    out = io.BytesIO()
    out.write(MARKER)
    out.write(entry.fingerprint)
    try:
        fastavro.schemaless_writer(out, entry.parsed, _to_datum(record))
    except (TypeError, ValueError, OverflowError, struct.error, AttributeError) as exc:
        raise EncodeError(f"{type(record).__name__}: {exc}") from exc
    return out.getvalue()


def decode(data: bytes) -> Event:
    """Decode one message to its typed record; any garbage raises :class:`DecodeError`."""
    if not data:
        raise DecodeError("empty")
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large", f"{len(data)} bytes")
    if data[:2] != MARKER:
        raise DecodeError("bad_marker", data[:2].hex())
    if len(data) < _HEADER:
        raise DecodeError("truncated", "shorter than the header")
    writer = _BY_FINGERPRINT.get(bytes(data[2:_HEADER]))
    if writer is None:
        raise DecodeError("unknown_fingerprint", bytes(data[2:_HEADER]).hex())
    reader = _CURRENT[writer.record]
    body = io.BytesIO(data)
    body.seek(_HEADER)
    try:
        datum = fastavro.schemaless_reader(
            body, writer.parsed, None if reader is writer else reader.parsed
        )
    except (EOFError, StopIteration) as exc:
        raise DecodeError("truncated", str(exc)) from exc
    except Exception as exc:  # fastavro raises many types on garbage; none may escape.
        raise DecodeError("malformed", f"{type(exc).__name__}: {exc}") from exc
    if body.tell() != len(data):
        raise DecodeError("trailing_bytes", f"{len(data) - body.tell()} bytes after the record")
    try:
        return _from_datum(writer.record, datum)  # type: ignore[arg-type]
    except Exception as exc:
        raise DecodeError("malformed", f"{type(exc).__name__}: {exc}") from exc
