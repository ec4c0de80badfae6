"""runstream's contract: Avro event schemas, the codec, the spool format, ClickHouse DDL.

Producers and consumers both import this package; it depends on fastavro only.
"""

from .codec import MARKER, MAX_MESSAGE_BYTES, decode, encode, fingerprint_of, writer_schemas
from .errors import ContractError, DecodeError, EncodeError, PipelineError
from .limits import RunLimits
from .records import (
    EVENT_TYPES,
    FINAL_STATUSES,
    RUN_STATUSES,
    Column,
    Event,
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

__all__ = [
    "MARKER",
    "MAX_MESSAGE_BYTES",
    "encode",
    "decode",
    "fingerprint_of",
    "writer_schemas",
    "RunLimits",
    "PipelineError",
    "ContractError",
    "EncodeError",
    "DecodeError",
    "EVENT_TYPES",
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
]
