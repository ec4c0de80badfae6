"""The cluster form of every shipped migration: local replicated tables + Distributed, on 18.16 and modern."""

import re

import pytest

from schemas.errors import ConfigurationError
from store import migrations
from store.base import TABLES
from store.migrations import ServerFeatures, load_migrations, render
from store.cluster import cluster_statements

LEGACY = ServerFeatures.from_version("18.16.1")
MODERN = ServerFeatures.from_version("26.9.2.1")


def clustered(features, cluster="runstream"):
    fragments = features.fragments("rs", retention_days=None)
    single = render(migrations.bootstrap_template(), fragments)
    for m in load_migrations():
        single += m.statements(fragments)
    return [c for s in single for c in cluster_statements(s, cluster=cluster)]


@pytest.mark.parametrize("features", [LEGACY, MODERN], ids=["legacy", "modern"])
def test_every_table_becomes_a_replicated_local_and_a_distributed_table(features):
    stmts = clustered(features)
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS `rs` ON CLUSTER runstream"
    created = {m[1]: s for s in stmts[1:] if (m := re.match(r"CREATE TABLE IF NOT EXISTS `rs`\.(\w+) ON CLUSTER runstream\n", s))}
    assert len(created) == len(stmts) - 1
    for table in TABLES:
        if table == "schema_migrations":
            assert "('/clickhouse/tables/all/rs/schema_migrations', '{replica}')" in created[table]
            assert "schema_migrations_local" not in created
            continue
        local, dist = created[table + "_local"], created[table]
        assert f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/rs/{table}', '{{replica}}'" in local
        assert "\nORDER BY " in local
        assert dist.endswith(f"ENGINE = Distributed(runstream, `rs`, {table}_local, cityHash64(run_id))")
        assert "MATERIALIZED" not in dist and "CODEC" not in dist and "TTL" not in dist


def test_version_column_and_settings_stay_on_the_local_table():
    stmts = clustered(LEGACY)
    heartbeats = next(s for s in stmts if "`rs`.run_heartbeats_local" in s)
    assert "('/clickhouse/tables/{shard}/rs/run_heartbeats', '{replica}', created_ms)\nORDER BY run_id" in heartbeats
    files = next(s for s in stmts if "`rs`.run_files_local" in s)
    assert files.endswith("SETTINGS index_granularity = 16")


@pytest.mark.parametrize("features, column", [
    (LEGACY, "time DateTime ALIAS toDateTime(intDiv(time_ms, 1000))"),
    (MODERN, "time DateTime64(3) ALIAS fromUnixTimestamp64Milli(time_ms)"),
], ids=["legacy", "modern"])
def test_materialized_becomes_alias_through_distributed(features, column):
    stmts = clustered(features)
    dist = next(s for s in stmts if "`rs`.metric_scalars ON" in s)
    local = next(s for s in stmts if "`rs`.metric_scalars_local ON" in s)
    assert f"    {column}\n" in dist
    assert " MATERIALIZED " in local


def test_modern_codecs_and_ttl_stay_on_the_local_table():
    fragments = MODERN.fragments("rs", retention_days=30)
    stmt = next(s for s in load_migrations()[0].statements(fragments) if ".rejected_events" in s)
    local, dist = cluster_statements(stmt, cluster="c1")
    assert local.endswith("TTL toDateTime(intDiv(rejected_ms, 1000)) + INTERVAL 30 DAY")
    assert "TTL" not in dist
    scalars = next(s for s in load_migrations()[0].statements(fragments) if ".metric_scalars" in s)
    local, dist = cluster_statements(scalars, cluster="c1")
    assert "step       Int64 CODEC(Delta, ZSTD(1))" in local and "    step Int64,\n" in dist


@pytest.mark.parametrize("statement", [
    "ALTER TABLE `rs`.runs ADD COLUMN x String",
    "CREATE TABLE IF NOT EXISTS `rs`.t\n(\n    run_id String\n)\nENGINE = MergeTree\nORDER BY run_id",
    "CREATE TABLE IF NOT EXISTS `rs`.t\n(\n    key String\n)\nENGINE = ReplacingMergeTree\nORDER BY key",
])
def test_unknown_shapes_and_unshardable_tables_are_refused(statement):
    with pytest.raises(ValueError):
        cluster_statements(statement, cluster="runstream")


@pytest.mark.parametrize("name", ["", "a-b", "x; DROP", "1abc", None])
def test_cluster_name_must_be_an_identifier(name):
    with pytest.raises(ConfigurationError):
        cluster_statements("CREATE DATABASE IF NOT EXISTS `rs`", cluster=name)
