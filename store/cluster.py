"""The sharded, replicated layout: one rendered single-server statement -> the cluster's statements.

Migrations are written once, for one server (``schemas/clickhouse/NNNN_*.sql``).
When the store is given a cluster name, :func:`cluster_statements` turns each
rendered statement into its cluster form, run ``ON CLUSTER``:

- ``CREATE DATABASE IF NOT EXISTS db``: the same, on every server.
- ``CREATE TABLE IF NOT EXISTS db.t (...) ENGINE = ReplacingMergeTree[(ver)] ...``:
  ``db.t_local``, a ``ReplicatedReplacingMergeTree`` replicated inside its shard
  (ZooKeeper path ``/clickhouse/tables/{shard}/db/t``, replica ``{replica}``: both
  macros of the server's config), and ``db.t``, a ``Distributed`` table over the
  locals with the sharding key ``cityHash64(run_id)``, so every duplicate of a row
  (a re-delivered message) lands on the shard that holds the original, and ``FINAL``
  and ``LIMIT 1 BY`` stay exact through ``db.t``. Ingest and readers keep using ``db.t``.
  Its columns are the local ones with ``MATERIALIZED`` turned into ``ALIAS`` (18.16
  refuses to insert through Distributed into a MATERIALIZED column) and no codecs.
- :data:`EVERY_SERVER_TABLES` (``schema_migrations``, which has no run id): one
  replica on every server (path ``/clickhouse/tables/all/db/t``) and no Distributed
  table, so each server knows every applied version.

Any other statement shape raises ``ValueError`` when rendered: a new kind of
migration must teach this module its cluster form before it reaches a server.
"""

from __future__ import annotations

import re

from schemas.errors import ConfigurationError

__all__ = ["LOCAL_SUFFIX", "SHARDING_KEY", "EVERY_SERVER_TABLES", "check_cluster_name", "cluster_statements"]

LOCAL_SUFFIX = "_local"
"""Appended to a table's name for its per-server replicated part."""

SHARDING_KEY = "cityHash64(run_id)"
"""How the Distributed tables spread rows: every row of one run on one shard."""

EVERY_SERVER_TABLES = frozenset({"schema_migrations"})
"""Tables replicated to every server of the cluster instead of sharded."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CREATE_DATABASE = re.compile(r"CREATE DATABASE IF NOT EXISTS (?P<db>`\w+`)")
_CREATE_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (?P<db>`\w+`)\.(?P<table>\w+)\s*\(\n(?P<columns>.*?)\n\)\s*\n"
    r"ENGINE = ReplacingMergeTree(?:\((?P<version>\w+)\))?[ \t]*\n(?P<rest>ORDER BY .*)",
    re.DOTALL,
)
_COLUMN = re.compile(r"\s*(?P<name>\w+)\s+(?P<definition>\S.*?),?\s*")
_CODEC = re.compile(r"\s+CODEC\(.*\)$")


def check_cluster_name(name: str) -> str:
    """Return ``name`` if it is a plain identifier (a ``remote_servers`` entry); else ``ConfigurationError``."""
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise ConfigurationError(f"cluster name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


def cluster_statements(statement: str, *, cluster: str) -> list[str]:
    """The cluster form of one rendered migration statement (see the module docstring).

    ``ValueError`` for a statement shape this module does not know, and for a
    sharded table without a ``run_id`` column.
    """
    check_cluster_name(cluster)
    text = statement.strip()
    m = _CREATE_DATABASE.fullmatch(text)
    if m is not None:
        return [f"CREATE DATABASE IF NOT EXISTS {m['db']} ON CLUSTER {cluster}"]
    m = _CREATE_TABLE.fullmatch(text)
    if m is None:
        raise ValueError(f"no cluster form for this statement (only CREATE DATABASE/TABLE IF NOT EXISTS of a "
                         f"ReplacingMergeTree): {text[:120]!r}")
    db, table, version, rest = m["db"], m["table"], m["version"], m["rest"]
    lines = m["columns"].split("\n")
    columns = [_column(line) for line in lines]
    db_name = db.strip("`")
    version_arg = "" if version is None else f", {version}"
    if table in EVERY_SERVER_TABLES:
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster}\n(\n{m['columns']}\n)\n"
            f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{db_name}/{table}', '{{replica}}'"
            f"{version_arg})\n{rest}"
        ]
    if "run_id" not in {name for name, _ in columns}:
        raise ValueError(f"table {table} has no run_id column to shard by")
    local = table + LOCAL_SUFFIX
    distributed_columns = ",\n".join(
        f"    {name} {_CODEC.sub('', definition).replace(' MATERIALIZED ', ' ALIAS ')}" for name, definition in columns)
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster}\n(\n{m['columns']}\n)\n"
        f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{db_name}/{table}', '{{replica}}'"
        f"{version_arg})\n{rest}",
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster}\n(\n{distributed_columns}\n)\n"
        f"ENGINE = Distributed({cluster}, {db}, {local}, {SHARDING_KEY})",
    ]


def _column(line: str) -> tuple[str, str]:
    m = _COLUMN.fullmatch(line)
    if m is None:
        raise ValueError(f"cannot read a column definition (one per line) from {line!r}")
    return m["name"], m["definition"]
