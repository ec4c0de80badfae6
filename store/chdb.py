"""The embedded store: chDB (in-process modern ClickHouse) in a data directory.

``ChdbStore(path)`` opens ``path`` with ``chdb.connect`` and keeps it open
until :meth:`ChdbStore.close`. Inserts stream a ``Native`` block (or
``RowBinary`` rows, ``insert_format=``) through ``send_insert``: data never
becomes SQL text. Queries use chDB's own ``{name:Type}`` parameters and parse a
JSON result typed by its header.

One process per data directory: chDB's files are not safe to share between
processes. The store holds an exclusive ``flock`` on ``<path>.lock`` (its
holder's pid written inside) for its whole life; a second process gets
:class:`~store.errors.StoreBusy` naming that pid, at once or after
``lock_timeout_s``. The lock dies with its process, SIGKILL included.

Inside one process chDB hosts a single engine bound to a single path: a second
``chdb.connect`` to another path fails while any connection is open, and
closing the last connection shuts the engine down (a later open of any path
works). This module keeps at most one open ``ChdbStore`` per process and says
so clearly (``StoreBusy``) instead of chDB's ``BAD_ARGUMENTS``; share the one
store (it serialises its calls with a lock) rather than opening two.

Fork: a child forked while a store is open does not inherit it (in the child
it is closed without touching the parent's engine or lock, and the directory
stays the parent's). Such a child must end with ``os._exit`` (as
``multiprocessing`` children do): chDB's own exit handlers hang in a forked
child whose parent had the engine running. Close the store before forking
when children should exit normally.

``chdb`` is imported when a store is opened, never when this module is
imported, so the SDK does not pay for it.
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from schemas.errors import ConfigurationError

from . import migrations
from ._results import parse_rows
from .base import CLUSTER_KEYS, TABLES, check_batch, check_database_name
from .errors import StoreBusy, StoreError, sink_error
from .rowbinary import encode_rows
from .sql import for_chdb

__all__ = ["ChdbStore", "ChdbReader", "ENGINE_SETTINGS", "READER_SETTINGS", "RESULT_FORMAT", "INSERT_FORMATS"]

ENGINE_SETTINGS: Mapping[str, str] = {
    "output_format_json_quote_denormals": "1",  # NaN/inf as "nan"/"inf" instead of null
    "output_format_json_quote_64bit_integers": "0",  # 64-bit ints as numbers; Python's json reads them exactly
    "output_format_json_validate_utf8": "0",  # file bytes as they are, not replaced by U+FFFD
}
"""Session settings of every connection (passed in chDB's connection string)."""

READER_SETTINGS: Mapping[str, str] = {
    "readonly": "1",  # no INSERT, DDL, SET, table functions such as file(); a query cannot lift it
    "max_threads": "1",  # a reader takes one core at most, whatever it asks for
}
"""Session settings added for :meth:`ChdbStore.open_reader` connections (``max_execution_time`` is the caller's)."""

RESULT_FORMAT = "JSONCompactEachRowWithNamesAndTypes"
"""Query output format: one header line of names, one of types, one JSON array per row."""

INSERT_FORMATS = ("Native", "RowBinary")
"""Input formats ``ChdbStore`` can insert with; ``Native`` (columnar, the default) is about 3x faster."""

_INSERT_CHUNK = 8 * 1024 * 1024
"""Bytes handed to chDB per ``append`` (bounds the copy chDB makes of each piece)."""

_CODE = re.compile(r"Code: (\d+)")

_process_lock = threading.Lock()
_open_store: ChdbStore | None = None
"""The one open store of this process (chDB hosts one engine per process)."""

_inherited: list[Any] = []
"""In a forked child: the parent's chDB connections, never to be freed (see ``ChdbStore._abandon``)."""


def _forget_in_child() -> None:
    """After ``fork``: the child must not use (or close) the parent's engine, nor unlock the parent's flock."""
    global _open_store
    store, _open_store = _open_store, None
    if store is not None:
        store._abandon()


os.register_at_fork(after_in_child=_forget_in_child)


def _error(what: str, exc: BaseException) -> StoreError:
    m = _CODE.search(str(exc))
    message = f"chDB {what} failed: {exc}"
    if m is None:
        return sink_error(message)
    return sink_error(message, code=int(m.group(1)))


def _lock_holder(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class ChdbStore:
    """chDB at ``path`` (a directory, created if missing); tables in ``database``.

    ``lock_timeout_s``: how long to wait for another process to release the
    data directory (0: fail at once with ``StoreBusy``). ``retention_days``: TTL
    for diagnostic tables, applied when the tables are created (see
    :mod:`store.migrations`). ``insert_format``: one of
    :data:`INSERT_FORMATS`. Calls are serialised by an internal lock, so threads
    may share one store.
    """

    def __init__(self, path: Path | str, database: str = "runstream", *, lock_timeout_s: float = 0.0,
                 retention_days: int | None = None, insert_format: str = "Native") -> None:
        self._database = check_database_name(database)
        if insert_format not in INSERT_FORMATS:
            raise ConfigurationError(f"insert_format {insert_format!r} is not one of {', '.join(INSERT_FORMATS)}")
        self._insert_format = insert_format
        self._path = Path(path).expanduser().resolve()
        if "?" in str(self._path):
            raise ConfigurationError(f"chDB path {self._path} must not contain '?' (chDB reads it as connection options)")
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._retention_days = retention_days
        self._mutex = threading.RLock()
        self._conn: Any = None
        self._readers: list[ChdbReader] = []
        self._lock_fd: int | None = None
        self._inserts: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {}
        self._writer: Any = None  # a store.blocks.BlockWriter, made by the first Native insert (it imports numpy)
        global _open_store
        with _process_lock:
            if _open_store is not None:
                other = _open_store
                raise StoreBusy(
                    f"this process (pid {os.getpid()}) already has chDB open at {other.path}; chDB hosts one "
                    f"engine per process: close that store first, or share it", holder_pid=os.getpid())
            self._take_lock(lock_timeout_s)
            try:
                self._conn = self._connect()
                self._server_version = str(self._query_raw("SELECT version()", {})[0][0])
            except BaseException:
                self._release()
                raise
            _open_store = self

    # -- lifetime ---------------------------------------------------------------------------------

    def _take_lock(self, timeout_s: float) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise sink_error(f"cannot lock {self._lock_path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = _lock_holder(self._lock_path)
                    who = f"pid {holder}" if holder is not None else "another process"
                    raise StoreBusy(
                        f"chDB data at {self._path} is in use by {who} (lock {self._lock_path}); only one "
                        "process may open it at a time", holder_pid=holder) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def _connect(self, extra: Mapping[str, str] | None = None) -> Any:
        try:
            chdb = importlib.import_module("chdb")
        except ImportError as exc:
            raise ConfigurationError("the embedded store needs chDB: pip install 'runstream[embedded]'") from exc
        options = "&".join(f"{k}={v}" for k, v in {**ENGINE_SETTINGS, **(extra or {})}.items())
        self._path.mkdir(parents=True, exist_ok=True)
        try:
            return chdb.connect(f"{self._path}?{options}")
        except Exception as exc:
            raise _error(f"open of {self._path}", exc) from exc

    def _release(self) -> None:
        # Readers first: closing the last connection shuts the engine down.
        readers, self._readers = self._readers, []
        for reader in readers:
            reader._close_connection()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing must not fail; the engine is gone with the process anyway
                pass
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _abandon(self) -> None:
        # In a forked child: the engine's threads did not survive the fork, and the flock
        # belongs to the open file shared with the parent, so LOCK_UN would free the
        # parent's lock. Drop our references only; the parent still owns both.
        self._mutex = threading.RLock()  # another thread may have held it at fork time
        readers, self._readers = self._readers, []
        for reader in readers:
            _inherited.append(reader._abandon())
        conn, self._conn = self._conn, None
        if conn is not None:
            # Kept alive on purpose: freeing a chDB connection in a forked child runs its
            # close(), which waits for engine threads that do not exist here (a hang).
            _inherited.append(conn)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close chDB and release the data directory (idempotent)."""
        global _open_store
        with self._mutex, _process_lock:
            self._release()
            if _open_store is self:
                _open_store = None

    def __enter__(self) -> ChdbStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- Store ------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The data directory."""
        return self._path

    @property
    def database(self) -> str:
        """The database every table lives in."""
        return self._database

    @property
    def server_version(self) -> str:
        """chDB's ClickHouse version (``SELECT version()``, asked at open)."""
        return self._server_version

    def _live(self) -> Any:
        if self._conn is None:
            raise sink_error(f"chDB store at {self._path} is closed", retriable=False)
        return self._conn

    def _query_raw(self, sql: str, params: Mapping[str, str]) -> list[tuple[Any, ...]]:
        return _run_query(self._live(), sql, params)

    def open_reader(self, *, time_limit_s: float) -> ChdbReader:
        """A read-only connection of its own to this store's data, for other processes' reads.

        It shares the engine but not this store's lock, so an insert never
        waits for a read, nor a read for an insert. The engine enforces
        :data:`READER_SETTINGS` and ``max_execution_time = time_limit_s``: a
        query that writes, calls ``file()`` or tries ``SETTINGS readonly=0`` is
        refused (code 164), one that runs longer stops (code 159). Closed with
        the store, or before it by :meth:`ChdbReader.close`.
        """
        if not 0 < time_limit_s <= 3600:
            raise ConfigurationError(f"time_limit_s must be in (0, 3600], got {time_limit_s!r}")
        with self._mutex:
            self._live()
            options = {**READER_SETTINGS, "max_execution_time": f"{time_limit_s:g}"}
            reader = ChdbReader(self, lambda: self._connect(options), time_limit_s)
            self._readers.append(reader)
            return reader

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one of our queries (``{db}``, ``{name:Type}``); rows as tuples. See ``QueryRunner``."""
        text, values = for_chdb(sql, self._database, params)
        with self._mutex:
            return self._query_raw(text, values)

    def execute_ddl(self, sql: str) -> None:
        """Run one DDL statement of ours (migrations only)."""
        with self._mutex:
            try:
                self._live().query(sql)
            except StoreError:
                raise
            except Exception as exc:
                raise _error("DDL", exc) from exc

    def _insert_for(self, table: str, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        key = (table, names)
        stmt = self._inserts.get(key)
        if stmt is None:  # names come from TABLES (checked), never from the caller's data
            types = tuple(TABLES[table][c] for c in names)
            stmt = (f"INSERT INTO `{self._database}`.`{table}` ({', '.join(names)})", types)
            self._inserts[key] = stmt
        return stmt

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert one columnar batch (a Native block or RowBinary rows, streamed). See ``EventSink.write``."""
        names, rows = check_batch(table, columns)
        if rows == 0:
            return
        sql, types = self._insert_for(table, names)
        values = [columns[c] for c in names]
        with self._mutex:  # the block writer's buffer is reused: one insert at a time
            try:
                if self._insert_format == "Native":
                    from .blocks import BlockWriter, cluster_order

                    if self._writer is None:
                        self._writer = BlockWriter()
                    payload: bytes | memoryview = self._writer.encode(
                        names, types, values, order=cluster_order(columns, CLUSTER_KEYS.get(table, ())))
                else:
                    payload = encode_rows(types, values)
            except (TypeError, ValueError, OverflowError, KeyError) as exc:
                raise sink_error(f"{table}: a value does not fit its column type: {exc}", retriable=False) from exc
            conn = self._live()
            try:
                inserter = conn.send_insert(sql, self._insert_format)
            except Exception as exc:
                raise _error(f"insert into {table}", exc) from exc
            try:
                view = memoryview(payload).cast("B")
                for start in range(0, len(view), _INSERT_CHUNK):
                    inserter.append(view[start : start + _INSERT_CHUNK])
                inserter.finish()
            except BaseException as exc:
                try:
                    inserter.cancel()
                except Exception:
                    pass  # the insert failed already; its error is the one to report
                if isinstance(exc, Exception):
                    raise _error(f"insert into {table}", exc) from exc
                raise

    def migrate(self) -> list[int]:
        """Create the database and apply missing migrations; returns the versions applied now."""
        with self._mutex:
            return migrations.apply(self, retention_days=self._retention_days)

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"ChdbStore({str(self._path)!r}, database={self._database!r}, {state})"


def _run_query(conn: Any, sql: str, params: Mapping[str, str]) -> list[tuple[Any, ...]]:
    return parse_rows(_run_encoded(conn, sql, params))


def _run_encoded(conn: Any, sql: str, params: Mapping[str, str]) -> bytes:
    try:
        return bytes(conn.query(sql, RESULT_FORMAT, params=dict(params)).bytes())
    except StoreError:
        raise
    except Exception as exc:
        raise _error("query", exc) from exc


class ChdbReader:
    """A :class:`~store.base.QueryRunner` on a read-only connection of a :class:`ChdbStore` (see ``open_reader``)."""

    def __init__(self, store: ChdbStore, connect: Any, time_limit_s: float) -> None:
        self._store = store
        self._connect = connect
        self._conn: Any = connect()
        self._mutex = threading.Lock()
        self.time_limit_s = time_limit_s
        """The engine stops a query that runs longer (``max_execution_time``)."""

    @property
    def database(self) -> str:
        return self._store.database

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one of our queries read-only; see ``QueryRunner``."""
        return parse_rows(self.query_encoded(sql, params))

    def query_encoded(self, sql: str, params: Mapping[str, Any] | None = None) -> bytes:
        """:meth:`query`'s result as chDB wrote it (:data:`RESULT_FORMAT`), for another process to parse.

        The owner of a home answers its readers with these bytes: parsing (the
        costly, GIL-holding part of a read) happens in the reader's process.
        """
        text, values = for_chdb(sql, self._store.database, params)
        with self._mutex:
            if self._conn is None:
                raise sink_error(f"chDB reader of {self._store.path} is closed", retriable=False)
            try:
                return _run_encoded(self._conn, text, values)
            except StoreError:
                # chDB 26.9 hands the part of a stopped query's output it had made (a timeout's
                # header) to the next query on the same connection: start afresh after any failure.
                conn, self._conn = self._conn, None
                conn.close()
                self._conn = self._connect()
                raise

    def close(self) -> None:
        """Close this connection (idempotent); the store stays open."""
        with self._store._mutex:
            if self in self._store._readers:
                self._store._readers.remove(self)
            self._close_connection()

    def _close_connection(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing must not fail
                pass

    def _abandon(self) -> Any:
        conn, self._conn = self._conn, None
        self._mutex = threading.Lock()
        return conn

    def __repr__(self) -> str:
        return f"ChdbReader({str(self._store.path)!r}, time_limit_s={self.time_limit_s:g})"
