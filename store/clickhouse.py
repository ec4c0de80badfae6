"""The server store: a ClickHouse server over the native protocol (clickhouse-driver).

``ClickHouseStore.from_url("clickhouse://user:pass@host:9000/db?secure=1")``.

A sharded, replicated ClickHouse is one URL too:
``clickhouse://ch-1:9000/db?cluster=runstream&alt_hosts=ch-2:9000,ch-3:9000``.
``cluster`` names the servers' ``remote_servers`` entry: migrations create
replicated tables and ``Distributed`` tables over them (:mod:`store.cluster`),
and inserts wait until every shard has its rows (``insert_distributed_sync``).
``alt_hosts`` are tried in turn when the server in use cannot be reached.
Queries are ours, rewritten from ``{name:Type}`` to the driver's ``%(name)s``
so the driver escapes every value (18.16 has no server-side parameters).

Inserts are ``Native`` blocks built by :mod:`store.blocks` (numpy arrays and
dictionary-coded strings written straight into one reusable buffer, rows
grouped by :data:`~store.base.CLUSTER_KEYS` so the server gets them in
sorting-key order) and sent as the Data packet of an ``INSERT`` on
clickhouse-driver's own connection: the same socket, TLS and credentials as
every query, no second port. The native protocol's block *is* the Native
format (plus one flag byte per column on servers newer than revision 54454,
written when the connection says so). Measured on 18.16 with 100,000-row
``metric_scalars`` batches: 0.04 µs of client CPU a point to send, against
1.3 for the driver's own columnar insert (its per-value String encoding) and
the same with its numpy mode. Two cases keep the driver's encoding: a
compressed connection (``compression=lz4``...), and a server whose table
types differ from the logical ones (``LowCardinality`` on modern servers),
seen in the sample block the server sends before the data.

Errors become :class:`~store.errors.StoreError` (a ``SinkError``),
chained with ``from``. ``retriable`` is True when the server could not be
reached, timed out or was overloaded (network errors, memory limit, too many
parts...), and False when it refused the statement or its data (syntax,
unknown table or column, type mismatch) or a value could not be serialised:
sending the same batch again cannot succeed then. Workers may retry either
way; the flag says whether waiting can help.
"""

from __future__ import annotations

import importlib
import logging
import re
import ssl
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from schemas.errors import ConfigurationError
from schemas.secrets import Secret, redact_url

from . import migrations
from .base import CLUSTER_KEYS, TABLES, check_batch, check_database_name
from .cluster import check_cluster_name
from .errors import StoreError, sink_error
from .sql import for_driver

__all__ = ["ClickHouseSettings", "ClickHouseStore", "COMPRESSIONS"]

COMPRESSIONS = ("none", "lz4", "lz4hc", "zstd")
"""Accepted ``compression`` values (all but ``none`` need the ``clickhouse-cityhash`` package)."""

log = logging.getLogger("runstream.store")

DDL_TASK_TIMEOUT_S = 60
"""How long an ``ON CLUSTER`` statement waits for every server (the server's default is 180 s)."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"ClickHouse URL parameter {name}={text!r} is not a boolean (1/0, true/false)")


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"ClickHouse URL parameter {name}={text!r} is not a number of seconds") from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickHouseSettings:
    """How to reach one ClickHouse server; built once, from a URL (:meth:`from_url`) or directly.

    TLS: ``secure`` (native TLS port, 9440 by default), ``verify`` (certificate
    check), ``ca_certs`` (a CA bundle path). Timeouts in seconds. ``alt_hosts``:
    more ``(host, port)`` servers of the same cluster, for failover. ``cluster``:
    the ``remote_servers`` name when the tables are sharded and replicated.
    """

    host: str
    port: int = 9000
    user: str = "default"
    password: str = field(default="", repr=False)
    database: str = "runstream"
    secure: bool = False
    verify: bool = True
    ca_certs: str | None = None
    connect_timeout: float = 10.0
    send_receive_timeout: float = 300.0
    compression: str = "none"
    alt_hosts: tuple[tuple[str, int], ...] = ()
    cluster: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigurationError("ClickHouse host is empty")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigurationError(f"ClickHouse port {self.port!r} is not in 1..65535")
        check_database_name(self.database)
        if self.connect_timeout <= 0 or self.send_receive_timeout <= 0:
            raise ConfigurationError("ClickHouse timeouts must be positive")
        if self.compression not in COMPRESSIONS:
            raise ConfigurationError(f"ClickHouse compression {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if not self.secure and (self.ca_certs is not None or not self.verify):
            raise ConfigurationError("ca_certs and verify apply to TLS only: add secure=1 (or use clickhouses://)")
        for host, port in self.alt_hosts:
            if not host or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigurationError(f"ClickHouse alternate host {host!r}:{port!r} is not a host and a port")
        if self.cluster is not None:
            check_cluster_name(self.cluster)

    _PARAMS = ("secure", "verify", "ca_certs", "connect_timeout", "send_receive_timeout", "compression",
               "alt_hosts", "cluster")

    @classmethod
    def from_url(cls, url: str, *, password: Secret | None = None) -> ClickHouseSettings:
        """Parse ``clickhouse[s]://[user[:password]@]host[:port][/database][?param=value&...]``.

        ``password`` (from the environment or a file: see :mod:`schemas.settings`) is the
        user's password when the URL has none; both at once is a ``ConfigurationError``.

        Parameters: ``secure``, ``verify``, ``ca_certs``, ``connect_timeout``,
        ``send_receive_timeout``, ``compression``, ``alt_hosts`` (``host[:port],...``;
        the port defaults to the URL's), ``cluster``; any other (or a repeated one)
        is a ``ConfigurationError``. ``clickhouses://`` means ``secure=1``. User and
        password are percent-decoded.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"bad ClickHouse URL: {exc}") from None
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise ConfigurationError(f"ClickHouse URL must start with clickhouse:// or clickhouses://, not {parts.scheme!r}://")
        if parts.fragment:
            raise ConfigurationError("ClickHouse URL must not have a #fragment")
        path = parts.path.strip("/")
        if "/" in path:
            raise ConfigurationError(f"ClickHouse URL path must be just a database name, not {path!r}")
        kwargs: dict[str, Any] = {"secure": parts.scheme == "clickhouses"}
        seen: set[str] = set()
        for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if name not in cls._PARAMS:
                raise ConfigurationError(f"unknown ClickHouse URL parameter {name!r}; known: {', '.join(cls._PARAMS)}")
            if name in seen:
                raise ConfigurationError(f"ClickHouse URL parameter {name!r} given twice")
            seen.add(name)
            if name in ("secure", "verify"):
                kwargs[name] = _flag(name, value)
            elif name in ("connect_timeout", "send_receive_timeout"):
                kwargs[name] = _seconds(name, value)
            elif name == "ca_certs":
                kwargs[name] = value or None
            elif name == "alt_hosts":
                kwargs[name] = value  # ports default to the main one, known below
            elif name == "cluster":
                kwargs[name] = value
            else:
                kwargs[name] = value.lower()
        if parts.hostname is None:
            raise ConfigurationError(f"ClickHouse URL {redact_url(url)!r} has no host")
        if parts.username:
            kwargs["user"] = unquote(parts.username)
        if parts.password:
            if password is not None:
                raise ConfigurationError("the ClickHouse password is given twice: in the URL and apart from it")
            kwargs["password"] = unquote(parts.password)
        elif password is not None:
            kwargs["password"] = password.reveal()
        if path:
            kwargs["database"] = path
        kwargs["port"] = port if port is not None else (9440 if kwargs["secure"] else 9000)
        if "alt_hosts" in kwargs:
            kwargs["alt_hosts"] = _host_list(kwargs["alt_hosts"], kwargs["port"])
        return cls(host=parts.hostname, **kwargs)

    def describe(self) -> str:
        """``host:port/database`` with the user, never the password (for logs and errors)."""
        where = f"{self.user}@{self.host}:{self.port}/{self.database}{' (TLS)' if self.secure else ''}"
        if self.alt_hosts:
            where += f" (or {', '.join(f'{h}:{p}' for h, p in self.alt_hosts)})"
        if self.cluster is not None:
            where += f" on cluster {self.cluster}"
        return where


_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(?P<port>\d{1,5}))?")


def _host_list(text: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in text.split(","):
        m = _HOST_PORT.fullmatch(item.strip())
        if m is None:
            raise ConfigurationError(f"ClickHouse URL parameter alt_hosts: {item!r} is not host[:port]")
        hosts.append((m["host"], int(m["port"]) if m["port"] else default_port))
    return tuple(hosts)


def _check_compression(settings: ClickHouseSettings) -> None:
    if settings.compression == "none":
        return
    try:
        importlib.import_module("clickhouse_cityhash.cityhash")
        importlib.import_module({"lz4": "lz4.block", "lz4hc": "lz4.block", "zstd": "zstd"}[settings.compression])
    except ImportError as exc:
        raise ConfigurationError(f"compression={settings.compression} needs packages that are not installed ({exc}); "
                          "install clickhouse-driver[lz4] / [zstd] or use compression=none") from None


def _default_client(settings: ClickHouseSettings) -> Any:
    # Imported here: `import store` must stay light for processes that never open a server connection.
    from clickhouse_driver import Client

    return Client(
        host=settings.host,
        port=settings.port,
        database="",  # the user's default: ours may not exist until migrate() creates it
        user=settings.user,
        password=settings.password,
        secure=settings.secure,
        verify=settings.verify,
        ca_certs=settings.ca_certs,
        connect_timeout=settings.connect_timeout,
        send_receive_timeout=settings.send_receive_timeout,
        compression=False if settings.compression == "none" else settings.compression,
        alt_hosts=",".join(f"{host}:{port}" for host, port in settings.alt_hosts) or None,
        client_name="runstream",
    )


_TIMEOUT_EXCEEDED = 159
_NONE_ACTIVE = re.compile(r"unfinished hosts \(0 of them are currently active\)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # Server exceptions carry the server's stack trace after the message.
    head = text.split("Stack trace:")[0].strip()
    return " ".join(head.split())[:1000]


def _untrusted_certificate(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) is a failed TLS certificate check."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _map_error(what: str, where: str, exc: BaseException) -> StoreError:
    from clickhouse_driver import errors as ch  # loaded by _default_client already; see there

    message = f"ClickHouse {where}: {what} failed: {type(exc).__name__}: {_first_line(exc)}"
    if _untrusted_certificate(exc):
        return sink_error(f"{message} (the server's TLS certificate is not signed by the CA in ca_certs, or "
                          "names another host: retrying cannot help)", retriable=False)
    if isinstance(exc, ch.ServerException):
        return sink_error(message, code=exc.code)
    if isinstance(exc, (ch.NetworkError, ch.SocketTimeoutError, ch.UnexpectedPacketFromServerError,
                        ch.UnknownPacketFromServerError, EOFError, OSError)):
        return sink_error(message)
    if isinstance(exc, (ch.TypeMismatchError, ch.TooLargeStringSize, TypeError, ValueError, OverflowError,
                        struct.error)):
        return sink_error(message, code=getattr(exc, "code", None), retriable=False)
    if isinstance(exc, ch.Error):
        return sink_error(message, code=exc.code)
    return sink_error(message)


_DRIVER_INSERT_API = ("disconnect_on_error", "receive_sample_block", "receive_profile_events",
                      "receive_end_of_insert_query", "send_data")
"""What the block insert uses of ``clickhouse_driver.Client`` (0.2.x; the dependency is pinned below 0.3)."""


def _as_list(values: Sequence[Any]) -> list[Any]:
    plain: list[Any] = values.tolist() if hasattr(values, "tolist") else list(values)
    return plain


def _insert_block(client: Any, writer: Any, sql: str, names: Sequence[str], types: Sequence[str],
                  values: Sequence[Sequence[Any]], order: Any, *, settings: Mapping[str, Any] | None = None) -> None:
    """``INSERT`` one block on the driver's connection: our Native bytes as its Data packet.

    Raises what the driver raises (the connection is dropped on any error, so
    the server abandons the half-sent insert) and what the block encoder
    raises for a value its column cannot hold.
    """
    from clickhouse_driver import defines
    from clickhouse_driver.block import BlockInfo, ColumnOrientedBlock
    from clickhouse_driver.protocol import ClientPacketTypes
    from clickhouse_driver.varint import write_varint
    from clickhouse_driver.writer import write_binary_str

    with client.disconnect_on_error(sql, settings):  # the query's settings (Distributed: synchronous inserts)
        conn = client.connection
        conn.send_query(sql)
        conn.send_external_tables(None)
        sample = client.receive_sample_block()
        physical = tuple(t for _, t in sample.columns_with_types) if sample is not None else ()
        if conn.compression or physical != tuple(types):
            client.send_data(sample, [_as_list(v) for v in values], columnar=True)
        else:
            revision = conn.server_info.used_revision
            body = writer.encode(
                names, types, values, order=order,
                serialization_flags=revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION)
            out = conn.fout
            write_varint(ClientPacketTypes.DATA, out)
            if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
                write_binary_str("", out)  # the table name: none for the data of the query itself
            if revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO:
                BlockInfo().write(out)
            out.flush()
            conn.socket.sendall(body)  # megabytes at once, not through the driver's 1 MiB write buffer
            client.receive_profile_events()
            conn.send_data(ColumnOrientedBlock())  # an empty block ends the data
            client.receive_profile_events()
        client.receive_end_of_insert_query()


class ClickHouseStore:
    """A ClickHouse server (18.16 or modern) as a :class:`~store.base.Store`.

    Nothing is sent until the first call. Calls are serialised by a lock (the
    driver's client is not thread-safe); the driver reconnects after a lost
    connection on the next call.
    """

    def __init__(self, settings: ClickHouseSettings, *, retention_days: int | None = None,
                 client_factory: Callable[[ClickHouseSettings], Any] = _default_client,
                 query_settings: Mapping[str, Any] | None = None) -> None:
        _check_compression(settings)
        self.settings = settings
        self._retention_days = retention_days
        self._client_factory = client_factory
        self._query_settings = dict(query_settings or {})
        self._client = client_factory(settings)
        self._mutex = threading.RLock()
        self._version: str | None = None
        self._inserts: dict[tuple[str, tuple[str, ...]], str] = {}
        # Through Distributed tables, an insert returns once every shard has its rows: asynchronous
        # inserts would queue on the receiving server's disk and be lost with it.
        self._insert_options: dict[str, Any] = (
            {} if settings.cluster is None else {"settings": {"insert_distributed_sync": 1}})
        self._blocks = all(hasattr(self._client, name) for name in _DRIVER_INSERT_API)
        self._writer: Any = None  # a store.blocks.BlockWriter, made by the first insert (it imports numpy)

    @classmethod
    def from_url(cls, url: str, *, password: Secret | None = None, retention_days: int | None = None) -> ClickHouseStore:
        """A store for ``url`` (see :meth:`ClickHouseSettings.from_url`); ``ConfigurationError`` when it is bad."""
        return cls(ClickHouseSettings.from_url(url, password=password), retention_days=retention_days)

    @property
    def database(self) -> str:
        """The database every table lives in."""
        return self.settings.database

    @property
    def server_version(self) -> str:
        """``SELECT version()``, asked on first use (``StoreError`` when the server is down)."""
        if self._version is None:
            self._version = str(self._execute("version", "SELECT version()")[0][0])
        return self._version

    def _execute(self, what: str, sql: str, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            try:
                return self._client.execute(sql, *args, **kwargs)
            except Exception as exc:
                raise _map_error(what, self.settings.describe(), exc) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one of our queries (``{db}``, ``{name:Type}``); rows as tuples. See ``QueryRunner``."""
        text, values = for_driver(sql, self.settings.database, params)
        if self._query_settings:
            return list(self._execute("query", text, values, settings=self._query_settings))
        return list(self._execute("query", text, values))

    def open_reader(self, *, time_limit_s: float) -> ClickHouseStore:
        """A connection of its own for other processes' reads, so a read never waits for an insert.

        Queries stop after ``time_limit_s`` (``max_execution_time``; a user whose
        profile is read-only ignores it, and its profile's limit applies).
        """
        return ClickHouseStore(self.settings, client_factory=self._client_factory,
                               query_settings={"max_execution_time": max(1, round(time_limit_s))})

    def execute_ddl(self, sql: str) -> None:
        """Run one DDL statement of ours (migrations only).

        An ``ON CLUSTER`` statement that times out only because servers are down
        (none of the unfinished ones is active) is queued for them in ZooKeeper and
        runs when they are back: logged, not raised.
        """
        if self.settings.cluster is None:
            self._execute("DDL", sql)
            return
        try:
            self._execute("DDL", sql, settings={"distributed_ddl_task_timeout": DDL_TASK_TIMEOUT_S})
        except StoreError as exc:
            if exc.code != _TIMEOUT_EXCEEDED or _NONE_ACTIVE.search(str(exc)) is None:
                raise
            log.warning("ClickHouse cluster %s: some servers are down; they will apply this DDL when back: %s",
                        self.settings.cluster, exc)

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert one columnar batch as one Native block (see the module docstring). See ``EventSink.write``."""
        names, rows = check_batch(table, columns)
        if rows == 0:
            return
        key = (table, names)
        sql = self._inserts.get(key)
        if sql is None:  # names come from TABLES (checked), never from the caller's data
            sql = f"INSERT INTO `{self.settings.database}`.`{table}` ({', '.join(names)}) VALUES"
            self._inserts[key] = sql
        values = [columns[c] for c in names]
        if not self._blocks:  # a client without the driver's insert internals (a test double)
            self._execute(f"insert into {table}", sql, [_as_list(v) for v in values], columnar=True,
                          **self._insert_options)
            return
        from .blocks import BlockWriter, cluster_order

        with self._mutex:
            try:
                if self._writer is None:
                    self._writer = BlockWriter()
                order = cluster_order(columns, CLUSTER_KEYS.get(table, ()))
                _insert_block(self._client, self._writer, sql, names, [TABLES[table][c] for c in names], values,
                              order, settings=self._insert_options.get("settings"))
            except Exception as exc:
                raise _map_error(f"insert into {table}", self.settings.describe(), exc) from exc

    def migrate(self) -> list[int]:
        """Create the database and apply missing migrations; returns the versions applied now."""
        with self._mutex:
            return migrations.apply(self, retention_days=self._retention_days, cluster=self.settings.cluster)

    def close(self) -> None:
        """Disconnect (idempotent; a later call would reconnect)."""
        with self._mutex:
            try:
                self._client.disconnect()
            except Exception:  # the connection is being dropped either way
                pass

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ClickHouseStore({self.settings.describe()})"

