-- Bootstrap, run before every migration check (not a numbered migration itself):
-- the database and the table that records which migrations were applied.
-- Rendered like the migrations (see 0001_initial.sql for the fragments).
-- Two ingest processes migrating at once both record a version; the
-- ReplacingMergeTree collapses the pair, and readers use DISTINCT anyway.

CREATE DATABASE IF NOT EXISTS ${db}
;
CREATE TABLE IF NOT EXISTS ${db}.schema_migrations
(
    version        UInt32,
    name           String,
    applied_ms     Int64,
    server_version String
)
ENGINE = ReplacingMergeTree
ORDER BY version
;
