"""Versioned DDL: ``schemas/clickhouse/NNNN_name.sql`` rendered for the server at hand, applied once.

Each file is a ``string.Template`` whose placeholders are filled from a fixed
dict of our own fragments (:meth:`ServerFeatures.fragments`), chosen by the
server's version: modern servers (>= 20.8: chDB 26.x, current LTS) get
``LowCardinality``, compression codecs, ``DateTime64`` and optional TTL; 18.16
gets plain types. Column names and logical types are the same everywhere.
Statements are separated by lines holding only ``;``.

:func:`apply` creates the database and ``schema_migrations`` (from
``schema_migrations.sql``), then runs the missing versions in order and records
each. Every statement is ``IF NOT EXISTS``, so a crash half way, or two
processes migrating at once, is harmless: the next run repeats what is missing.

On a cluster (``apply(..., cluster="name")``) every rendered statement goes
through :func:`store.cluster.cluster_statements` and runs ``ON CLUSTER``:
replicated local tables plus ``Distributed`` tables under the usual names.
A cluster already up to date gets no DDL at all (each one waits for every server).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Protocol

from .base import check_database_name
from .cluster import cluster_statements
from .errors import StoreError

__all__ = [
    "MODERN_SINCE",
    "ServerFeatures",
    "Migration",
    "load_migrations",
    "bootstrap_template",
    "render",
    "apply",
]

log = logging.getLogger("runstream.store")

MODERN_SINCE = (20, 8)
"""The first ClickHouse release treated as modern (LowCardinality, codecs, TTL, DateTime64 all stable)."""

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFeatures:
    """What the server supports, decided once from ``SELECT version()``."""

    version: str
    modern: bool

    @classmethod
    def from_version(cls, version: str) -> ServerFeatures:
        """``"18.16.1"`` -> legacy, ``"26.9.2.1"`` -> modern; ``ValueError`` when not a version."""
        m = re.match(r"\s*(\d+)\.(\d+)", version)
        if m is None:
            raise ValueError(f"cannot read a ClickHouse version from {version!r}")
        return cls(version=version.strip(), modern=(int(m.group(1)), int(m.group(2))) >= MODERN_SINCE)

    def fragments(self, database: str, *, retention_days: int | None = None) -> dict[str, str]:
        """The fixed placeholder values for this server (see ``0001_initial.sql``).

        ``retention_days`` adds a TTL to ``rejected_events`` and
        ``run_heartbeats`` on modern servers (18.16 has no TTL: ignored there,
        with a warning).
        """
        db = f"`{check_database_name(database)}`"
        if retention_days is not None and (not isinstance(retention_days, int) or retention_days < 1):
            raise ValueError(f"retention_days must be a positive int, not {retention_days!r}")
        if self.modern:
            ttl = "" if retention_days is None else (
                "\nTTL toDateTime(intDiv({col}, 1000)) + INTERVAL " + str(int(retention_days)) + " DAY")
            return {
                "db": db,
                "lc": "LowCardinality(String)",
                "codec_delta": " CODEC(Delta, ZSTD(1))",
                "codec_text": " CODEC(ZSTD(1))",
                "time_type": "DateTime64(3)",
                "time_of_time_ms": "fromUnixTimestamp64Milli(time_ms)",
                "ttl_rejected": ttl.format(col="rejected_ms"),
                "ttl_heartbeats": ttl.format(col="created_ms"),
            }
        if retention_days is not None:
            log.warning("ClickHouse %s has no TTL: retention_days=%d is ignored", self.version, retention_days)
        return {
            "db": db,
            "lc": "String",
            "codec_delta": "",
            "codec_text": "",
            "time_type": "DateTime",
            "time_of_time_ms": "toDateTime(intDiv(time_ms, 1000))",
            "ttl_rejected": "",
            "ttl_heartbeats": "",
        }


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered DDL file."""

    version: int
    name: str
    template: str

    def statements(self, fragments: Mapping[str, str]) -> list[str]:
        """The rendered statements, in order."""
        return render(self.template, fragments)


def _schema_dir() -> Any:
    return resources.files("schemas").joinpath("clickhouse")


def load_migrations(directory: Path | None = None) -> tuple[Migration, ...]:
    """Every ``NNNN_name.sql`` in ``directory`` (default: the installed ``schemas/clickhouse``), by version.

    ``ValueError`` on a repeated version number.
    """
    folder = _schema_dir() if directory is None else directory
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        m = _FILE.fullmatch(entry.name)
        if m is None:
            continue
        version = int(m.group(1))
        if version in found:
            raise ValueError(f"two migrations numbered {version}: {found[version].name}, {m.group(2)}")
        found[version] = Migration(version, m.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


def bootstrap_template(directory: Path | None = None) -> str:
    """``schema_migrations.sql``: the database and the migrations table."""
    folder = _schema_dir() if directory is None else directory
    return str(folder.joinpath("schema_migrations.sql").read_text(encoding="utf-8"))


def render(template: str, fragments: Mapping[str, str]) -> list[str]:
    """Fill ``template`` with ``fragments`` and split it at lines holding only ``;``.

    An unknown placeholder raises ``KeyError`` (a typo in a DDL file must not
    reach the server). Full-line ``--`` comments and blank lines are dropped,
    before filling: a comment that names a placeholder stays a comment even when
    the fragment spans lines (the TTL clauses do).
    """
    code = "\n".join(line for line in template.splitlines() if not line.strip().startswith("--"))
    text = Template(code).substitute(fragments)
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == ";":
            statements.append("\n".join(current).strip())
            current = []
        elif stripped:
            current.append(line.rstrip())
    statements.append("\n".join(current).strip())
    return [s for s in statements if s]


class _Backend(Protocol):
    """What :func:`apply` needs of a store."""

    @property
    def database(self) -> str: ...

    @property
    def server_version(self) -> str: ...

    def execute_ddl(self, sql: str) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None: ...


def apply(backend: _Backend, *, migrations: Iterable[Migration] | None = None, bootstrap: str | None = None,
          retention_days: int | None = None, cluster: str | None = None,
          clock: Callable[[], float] = time.time) -> list[int]:
    """Create the database, then apply and record every migration not yet recorded; returns their versions.

    ``cluster``: the ``remote_servers`` name of a sharded, replicated ClickHouse;
    the DDL is rendered for it (see :mod:`store.cluster`) and runs ``ON CLUSTER``.
    """
    features = ServerFeatures.from_version(backend.server_version)
    fragments = features.fragments(backend.database, retention_days=retention_days)
    todo = list(migrations if migrations is not None else load_migrations())

    def statements(rendered: list[str]) -> list[str]:
        if cluster is None:
            return rendered
        return [c for stmt in rendered for c in cluster_statements(stmt, cluster=cluster)]

    applied: set[int] | None = None
    if cluster is not None:
        try:  # every ON CLUSTER statement waits for every server: skip them when nothing is missing
            applied = _applied(backend)
        except StoreError:
            applied = None  # no database or table yet
        if applied is not None and all(m.version in applied for m in todo):
            return []
    for stmt in statements(render(bootstrap if bootstrap is not None else bootstrap_template(), fragments)):
        backend.execute_ddl(stmt)
    applied = _applied(backend)
    done: list[int] = []
    for migration in todo:
        if migration.version in applied:
            continue
        for stmt in statements(migration.statements(fragments)):
            backend.execute_ddl(stmt)
        backend.write("schema_migrations", {
            "version": [migration.version],
            "name": [migration.name],
            "applied_ms": [int(clock() * 1000)],
            "server_version": [features.version],
        })
        log.info("applied ClickHouse migration %04d_%s to %s%s", migration.version, migration.name,
                 backend.database, "" if cluster is None else f" on cluster {cluster}")
        done.append(migration.version)
    return done


def _applied(backend: _Backend) -> set[int]:
    return {int(r[0]) for r in backend.query("SELECT DISTINCT version FROM {db}.schema_migrations")}
