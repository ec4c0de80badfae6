"""The store seam: what the ingest writes through and what readers query through.

- :class:`EventSink`: ``write(table, columns)`` takes one columnar batch for one table.
- :class:`QueryRunner`: ``query(sql, params)`` runs one of *our* queries, written
  with ``{name:Type}`` placeholders for values and ``{db}`` for the database.
- :class:`Store`: both, plus ``migrate()``, ``server_version`` and ``database``.

:data:`TABLES` is the logical schema: table -> ordered ``column -> logical type``.
Inserts are checked against it, and table and column names reach SQL only from
it (never from user data). The DDL in ``schemas/clickhouse/`` is its physical
form; a test checks that both backends end up with exactly these columns and
types (``LowCardinality`` and codecs aside).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from schemas.errors import ConfigurationError

__all__ = [
    "EventSink",
    "QueryRunner",
    "Store",
    "ReadConnection",
    "TABLES",
    "CLUSTER_KEYS",
    "LOGICAL_TYPES",
    "check_database_name",
    "check_batch",
]


@runtime_checkable
class EventSink(Protocol):
    """Where the ingest writes rows."""

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert one columnar batch into ``table`` (a :data:`TABLES` key), all or nothing.

        ``columns`` maps column names (a subset of the table's, in any order;
        missing ones get their defaults) to equal-length columns: lists (or any
        sequence), numpy arrays for numeric types, or
        :class:`~store.columns.DictColumn` for ``String``. Raises
        ``ValueError`` for a malformed batch (unknown table or column, ragged
        columns) before anything is sent, and :class:`~store.errors.StoreError`
        when the server refuses or cannot be reached (``retriable`` says whether
        trying again can help).
        """
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


@runtime_checkable
class QueryRunner(Protocol):
    """Where readers ask questions."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` and return its rows as tuples.

        ``sql`` says ``{db}`` for the database and ``{name:Type}`` for each value
        (``{run:String}``, ``{names:Array(String)}``, ``{n:Int64}``); values come
        from ``params`` and are never formatted into the SQL text by the caller.
        Results use Python types: ``int``, ``float`` (NaN/inf kept), ``str``
        (``bytes`` where a String holds invalid UTF-8), ``list`` for arrays.
        Raises :class:`~store.errors.StoreError` on failure.
        """
        ...


@runtime_checkable
class Store(EventSink, QueryRunner, Protocol):
    """A ClickHouse server or chDB: a sink, a query runner, and its schema."""

    @property
    def database(self) -> str:
        """The database every table lives in."""
        ...

    @property
    def server_version(self) -> str:
        """``SELECT version()`` of the engine (asked once)."""
        ...

    def migrate(self) -> list[int]:
        """Create the database and apply missing migrations; returns the versions applied now."""
        ...

    def open_reader(self, *, time_limit_s: float) -> ReadConnection:
        """A connection of its own for reads on behalf of other processes (the home's query socket).

        Inserts on the store never wait for it; its queries stop after ``time_limit_s``.
        """
        ...


@runtime_checkable
class ReadConnection(QueryRunner, Protocol):
    """A :class:`QueryRunner` with a connection of its own, closed by its user."""

    def close(self) -> None: ...


def _table(*columns: tuple[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(columns))


S, I64, U64, U32, I32, U8, F64 = "String", "Int64", "UInt64", "UInt32", "Int32", "UInt8", "Float64"

TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "runs": _table(
        ("run_id", S), ("experiment", S), ("parent_run_id", S), ("display_name", S), ("kind", S), ("host", S),
        ("pid", I64), ("start_ms", I64), ("writer_id", S), ("seq", U64)),
    "run_status": _table(
        ("run_id", S), ("experiment", S), ("status", S), ("error_details", S), ("created_ms", I64),
        ("writer_id", S), ("seq", U64)),
    "run_attributes": _table(
        ("run_id", S), ("experiment", S), ("kind", S), ("key", S), ("value", S), ("has_value", U8),
        ("created_ms", I64), ("writer_id", S), ("seq", U64)),
    "run_heartbeats": _table(
        ("run_id", S), ("experiment", S), ("created_ms", I64), ("interval_ms", I64)),
    "metric_names": _table(
        ("run_id", S), ("experiment", S), ("name", S), ("kind", S), ("description", S), ("first_ms", I64)),
    "metric_scalars": _table(
        ("experiment", S), ("run_id", S), ("name", S), ("step", I64), ("time_ms", I64), ("value", F64),
        ("text", S), ("is_text", U8), ("writer_id", S), ("seq", U64), ("idx", U32), ("created_ms", I64)),
    "metric_rows": _table(
        ("run_id", S), ("experiment", S), ("name", S), ("kind", S), ("created_ms", I64), ("writer_id", S),
        ("seq", U64), ("row_idx", U32), ("col_names", f"Array({S})"), ("col_numbers", f"Array({F64})"),
        ("col_texts", f"Array({S})"), ("col_is_text", f"Array({U8})")),
    "run_images": _table(
        ("run_id", S), ("experiment", S), ("name", S), ("description", S), ("file_path", S), ("content_type", S),
        ("size", I64), ("created_ms", I64), ("writer_id", S), ("seq", U64)),
    "run_files": _table(
        ("run_id", S), ("experiment", S), ("path", S), ("upload_id", S), ("chunk_index", U32),
        ("chunk_count", U32), ("total_size", I64), ("sha256", S), ("content_type", S), ("data", S),
        ("created_ms", I64), ("writer_id", S), ("seq", U64)),
    "run_logs": _table(
        ("run_id", S), ("experiment", S), ("time_ms", I64), ("stream", S), ("logger", S), ("level", I32),
        ("message", S), ("exc_text", S), ("writer_id", S), ("seq", U64), ("idx", U32)),
    "rejected_events": _table(
        ("run_id", S), ("experiment", S), ("reason", S), ("detail", S), ("event_type", S), ("source", S),
        ("source_offset", I64), ("item", I32), ("created_ms", I64), ("rejected_ms", I64)),
    "writer_progress": _table(
        ("writer_id", S), ("run_id", S), ("experiment", S), ("seq", U64), ("updated_ms", I64)),
    "schema_migrations": _table(
        ("version", U32), ("name", S), ("applied_ms", I64), ("server_version", S)),
})
"""The logical schema: table -> ordered ``column -> logical type`` of every insertable column.

Logical types are ClickHouse type names without ``LowCardinality`` (a physical
choice): ``String``, ``Int64``, ``UInt64``, ``UInt32``, ``Int32``, ``UInt8``,
``Float64`` and ``Array`` of those. ``String`` columns take ``str`` or ``bytes``.
``metric_scalars`` also has ``time`` (``DateTime64(3)``, ``DateTime`` on 18.16),
computed by the server from ``time_ms`` and never inserted.
"""

CLUSTER_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "metric_scalars": ("experiment", "name", "run_id"),
})
"""Per table, the leading ``String`` columns of its sorting key (``schemas/clickhouse/``).

Writers group a batch's rows by them, keeping the order within a group
(:func:`store.blocks.cluster_order`): rows that arrive in step order then reach
the server sorted by the whole key, and it skips its own sort. Only tables
whose rows come by the hundred thousand are listed.
"""

LOGICAL_TYPES = frozenset({S, I64, U64, U32, I32, U8, F64, f"Array({S})", f"Array({F64})", f"Array({U8})"})
"""Every logical type :data:`TABLES` uses (what the encoders must support)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_database_name(name: str) -> str:
    """Return ``name`` if it is a plain identifier (``[A-Za-z_][A-Za-z0-9_]{0,63}``); else ``ConfigurationError``."""
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise ConfigurationError(
            f"database name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters)")
    return name


def check_batch(table: str, columns: Mapping[str, Sequence[Any]]) -> tuple[tuple[str, ...], int]:
    """Validate one batch against :data:`TABLES`; returns (column names in table order, row count).

    ``ValueError`` for an unknown table or column, no columns, or columns of
    different lengths: a bug in the caller, found before anything is sent.
    """
    spec = TABLES.get(table)
    if spec is None:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    if not columns:
        raise ValueError(f"{table}: a batch needs at least one column")
    unknown = [c for c in columns if c not in spec]
    if unknown:
        raise ValueError(f"{table}: unknown column(s) {unknown}; the table has {list(spec)}")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{table}: columns differ in length: {lengths}")
    names = tuple(c for c in spec if c in columns)
    return names, next(iter(lengths.values()))
