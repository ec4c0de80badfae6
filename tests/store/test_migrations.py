"""Rendering the DDL templates for legacy (18.16) and modern servers, and applying them in order."""

import re
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from store import migrations
from store.base import TABLES
from store.errors import StoreError
from store.migrations import Migration, ServerFeatures, apply, load_migrations, render

LEGACY = ServerFeatures.from_version("18.16.1")
MODERN = ServerFeatures.from_version("26.9.2.1")


def all_statements(features, **kw):
    fragments = features.fragments("runstream", **kw)
    out = render(migrations.bootstrap_template(), fragments)
    for m in load_migrations():
        out += m.statements(fragments)
    return out


@pytest.mark.parametrize("version, modern", [
    ("18.16.1", False), ("19.17.9.60", False), ("20.3.1", False), ("20.8.1", True), ("23.8.2.7", True),
    ("26.9.2.1", True), (" 25.8.1.1\n", True),
])
def test_features_by_version(version, modern):
    f = ServerFeatures.from_version(version)
    assert f.modern is modern
    assert f.version == version.strip()


def test_not_a_version():
    with pytest.raises(ValueError):
        ServerFeatures.from_version("ClickHouse")


def test_legacy_uses_only_plain_types():
    text = "\n".join(all_statements(LEGACY))
    for modern_only in ("LowCardinality", "CODEC", "DateTime64", "TTL", "fromUnixTimestamp64Milli"):
        assert modern_only not in text
    assert "time       DateTime MATERIALIZED toDateTime(intDiv(time_ms, 1000))" in text


def test_modern_uses_low_cardinality_codecs_and_datetime64():
    text = "\n".join(all_statements(MODERN))
    assert "experiment    LowCardinality(String)" in text
    assert "step       Int64 CODEC(Delta, ZSTD(1))" in text
    assert "data         String CODEC(ZSTD(1))" in text
    assert "time       DateTime64(3) MATERIALIZED fromUnixTimestamp64Milli(time_ms)" in text
    assert "TTL" not in text  # retention is opt-in


def test_retention_adds_ttl_on_modern_only(caplog):
    text = "\n".join(all_statements(MODERN, retention_days=30))
    assert "TTL toDateTime(intDiv(rejected_ms, 1000)) + INTERVAL 30 DAY" in text
    assert "TTL toDateTime(intDiv(created_ms, 1000)) + INTERVAL 30 DAY" in text
    assert "TTL" not in "\n".join(all_statements(LEGACY, retention_days=30))
    assert "has no TTL" in caplog.text
    with pytest.raises(ValueError):
        MODERN.fragments("runstream", retention_days=0)


@pytest.mark.parametrize("features", [LEGACY, MODERN], ids=["legacy", "modern"])
def test_every_statement_is_idempotent_and_qualified(features):
    stmts = all_statements(features)
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS `runstream`"
    for stmt in stmts:
        assert "$" not in stmt and "{" not in stmt
        assert re.match(r"CREATE (DATABASE|TABLE) IF NOT EXISTS `runstream`", stmt), stmt[:80]


@pytest.mark.parametrize("features", [LEGACY, MODERN], ids=["legacy", "modern"])
def test_one_logical_schema(features):
    """Each rendering creates exactly the tables and columns of TABLES (plus the computed `time`)."""
    created = {}
    for stmt in all_statements(features):
        m = re.match(r"CREATE TABLE IF NOT EXISTS `runstream`\.(\w+)\s*\((.*?)\n\)", stmt, re.S)
        if m is None:
            continue
        cols = [line.strip().rstrip(",").split()[0] for line in m.group(2).strip().splitlines()]
        created[m.group(1)] = [c for c in cols if c != "time"]
    assert set(created) == set(TABLES)
    for table, cols in created.items():
        assert cols == list(TABLES[table]), table


def test_database_name_is_validated():
    for bad in ("", "run-stream", "a b", "x`; DROP", "1abc", "a" * 65, "rún"):
        with pytest.raises(ConfigurationError):
            LEGACY.fragments(bad)


def test_render_splits_on_semicolon_lines_and_drops_comments():
    template = "-- header\nCREATE ${db}.a\n(x)\n;\n-- only a comment\n;\nCREATE ${db}.b;\n  ;  \n"
    assert render(template, {"db": "`d`"}) == ["CREATE `d`.a\n(x)", "CREATE `d`.b;"]


def test_unknown_placeholder_is_an_error():
    with pytest.raises(KeyError):
        render("CREATE ${nope}", {"db": "`d`"})


def test_migrations_are_numbered_files(tmp_path: Path):
    (tmp_path / "0002_more.sql").write_text("B")
    (tmp_path / "0001_first.sql").write_text("A")
    (tmp_path / "schema_migrations.sql").write_text("S")
    (tmp_path / "notes.txt").write_text("x")
    assert load_migrations(tmp_path) == (Migration(1, "first", "A"), Migration(2, "more", "B"))
    (tmp_path / "0002_again.sql").write_text("C")
    with pytest.raises(ValueError):
        load_migrations(tmp_path)


def test_shipped_migrations_start_at_one_without_gaps():
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


class FakeBackend:
    database = "db1"

    def __init__(self, version="18.16.1", applied=()):
        self.server_version = version
        self.ddl = []
        self.rows = [(v,) for v in applied]
        self.written = []

    def execute_ddl(self, sql):
        self.ddl.append(sql)

    def query(self, sql, params=None):
        assert sql == "SELECT DISTINCT version FROM {db}.schema_migrations"
        return list(self.rows)

    def write(self, table, columns):
        self.written.append((table, dict(columns)))
        self.rows.append((columns["version"][0],))


def test_apply_runs_only_missing_versions_and_records_them():
    ms = [Migration(1, "one", "CREATE ${db}.a\n;\n"), Migration(2, "two", "CREATE ${db}.b\n;\nCREATE ${db}.c\n;\n")]
    backend = FakeBackend(applied=[1])
    done = apply(backend, migrations=ms, bootstrap="CREATE DATABASE ${db}\n;\n", clock=lambda: 12.5)
    assert done == [2]
    assert backend.ddl == ["CREATE DATABASE `db1`", "CREATE `db1`.b", "CREATE `db1`.c"]
    assert backend.written == [("schema_migrations", {"version": [2], "name": ["two"], "applied_ms": [12500],
                                                      "server_version": ["18.16.1"]})]
    assert apply(backend, migrations=ms, bootstrap="CREATE DATABASE ${db}\n;\n") == []


def test_a_comment_naming_a_multiline_fragment_stays_a_comment():
    # The TTL fragments start with a newline; rendered inside the header comment they used to
    # leave "TTL ..." lines in front of the first CREATE TABLE.
    for stmt in all_statements(MODERN, retention_days=30):
        assert re.match(r"CREATE (DATABASE|TABLE) IF NOT EXISTS `runstream`", stmt), stmt[:80]


class FakeClusterBackend(FakeBackend):
    def __init__(self, applied=(), missing=False):
        super().__init__(applied=applied)
        self.missing = missing

    def query(self, sql, params=None):
        if self.missing and not self.ddl:
            raise StoreError("Code: 81. Database db1 doesn't exist", code=81, retriable=False)
        return super().query(sql, params)


def test_cluster_ddl_is_rendered_on_cluster_and_skipped_when_up_to_date():
    ms = [Migration(1, "one", "CREATE TABLE IF NOT EXISTS ${db}.t\n(\n    run_id String\n)\n"
                              "ENGINE = ReplacingMergeTree\nORDER BY run_id\n;\n")]
    backend = FakeClusterBackend(missing=True)
    assert apply(backend, migrations=ms, bootstrap="CREATE DATABASE IF NOT EXISTS ${db}\n;\n", cluster="c1") == [1]
    assert backend.ddl[0] == "CREATE DATABASE IF NOT EXISTS `db1` ON CLUSTER c1"
    assert [d.split("\n")[0] for d in backend.ddl[1:]] == [
        "CREATE TABLE IF NOT EXISTS `db1`.t_local ON CLUSTER c1", "CREATE TABLE IF NOT EXISTS `db1`.t ON CLUSTER c1"]
    before = list(backend.ddl)
    assert apply(backend, migrations=ms, bootstrap="CREATE DATABASE IF NOT EXISTS ${db}\n;\n", cluster="c1") == []
    assert backend.ddl == before  # nothing missing: no ON CLUSTER statement at all
