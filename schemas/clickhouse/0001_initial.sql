-- runstream's ClickHouse schema, version 1.
--
-- A template for string.Template, rendered by store/migrations.py from a
-- FIXED set of fragments chosen by the server's version (never from user data):
--   ${db}               the database, a validated identifier, back-quoted
--   ${lc}               LowCardinality(String) on modern servers, String on 18.16
--   ${codec_delta}      " CODEC(Delta, ZSTD(1))" for (mostly) monotone Int64s, or nothing
--   ${codec_text}       " CODEC(ZSTD(1))" for long free text and file bytes, or nothing
--   ${time_type}        DateTime64(3) on modern servers, DateTime on 18.16
--   ${time_of_time_ms}  the expression turning time_ms into ${time_type}
--   ${ttl_rejected}, ${ttl_heartbeats}   " TTL ..." retention clauses, or nothing
-- Statements are separated by lines holding only ";".
--
-- Every table is a ReplacingMergeTree whose sorting key holds the row's dedup
-- identity: a re-delivered message (same writer_id, seq) yields rows with the same
-- key, which merges collapse. Until a merge, readers use FINAL, LIMIT 1 BY the
-- identity, or aggregates that duplicates cannot change.
-- Timestamps are Int64 epoch milliseconds everywhere.
-- No table is partitioned: a partition key is not part of the dedup identity, and
-- ReplacingMergeTree only collapses rows inside one partition.

CREATE TABLE IF NOT EXISTS ${db}.runs
(
    run_id        String,
    experiment    ${lc},
    parent_run_id String,
    display_name  String,
    kind          ${lc},
    host          ${lc},
    pid           Int64,
    start_ms      Int64,
    writer_id     String,
    seq           UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (experiment, run_id)
;
CREATE TABLE IF NOT EXISTS ${db}.run_status
(
    run_id        String,
    experiment    ${lc},
    status        ${lc},
    error_details String,
    created_ms    Int64,
    writer_id     String,
    seq           UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, created_ms, writer_id, seq)
;
CREATE TABLE IF NOT EXISTS ${db}.run_attributes
(
    run_id     String,
    experiment ${lc},
    kind       ${lc},
    key        String,
    value      String,
    has_value  UInt8,
    created_ms Int64,
    writer_id  String,
    seq        UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, kind, key, created_ms, writer_id, seq)
;
-- One row per run once merged: the newest heartbeat wins.
CREATE TABLE IF NOT EXISTS ${db}.run_heartbeats
(
    run_id      String,
    experiment  ${lc},
    created_ms  Int64,
    interval_ms Int64
)
ENGINE = ReplacingMergeTree(created_ms)
ORDER BY run_id${ttl_heartbeats}
;
CREATE TABLE IF NOT EXISTS ${db}.metric_names
(
    run_id      String,
    experiment  ${lc},
    name        ${lc},
    kind        ${lc},
    description String,
    first_ms    Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, name)
;
-- Sorted for sweep leaderboards (one metric across an experiment's runs) and for
-- one run's metric in step order (experiment, name, run_id prefix).
-- `time` is for Grafana; it is computed by the server, never inserted.
CREATE TABLE IF NOT EXISTS ${db}.metric_scalars
(
    experiment ${lc},
    run_id     String,
    name       ${lc},
    step       Int64${codec_delta},
    time_ms    Int64${codec_delta},
    value      Float64,
    text       String,
    is_text    UInt8,
    writer_id  String,
    seq        UInt64${codec_delta},
    idx        UInt32,
    created_ms Int64${codec_delta},
    time       ${time_type} MATERIALIZED ${time_of_time_ms}
)
ENGINE = ReplacingMergeTree
ORDER BY (experiment, name, run_id, step, writer_id, seq, idx)
;
-- One row per list element, logged row, or table row.
CREATE TABLE IF NOT EXISTS ${db}.metric_rows
(
    run_id      String,
    experiment  ${lc},
    name        ${lc},
    kind        ${lc},
    created_ms  Int64${codec_delta},
    writer_id   String,
    seq         UInt64,
    row_idx     UInt32,
    col_names   Array(String),
    col_numbers Array(Float64),
    col_texts   Array(String),
    col_is_text Array(UInt8)
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, name, created_ms, writer_id, seq, row_idx)
;
CREATE TABLE IF NOT EXISTS ${db}.run_images
(
    run_id       String,
    experiment   ${lc},
    name         ${lc},
    description  String,
    file_path    String,
    content_type ${lc},
    size         Int64,
    created_ms   Int64,
    writer_id    String,
    seq          UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, name, created_ms, writer_id, seq)
;
-- Rows carry up to 512 KiB of bytes each: small granules, so that reading one
-- file does not read 8192 rows' worth (18.16 has no adaptive granularity).
CREATE TABLE IF NOT EXISTS ${db}.run_files
(
    run_id       String,
    experiment   ${lc},
    path         String,
    upload_id    String,
    chunk_index  UInt32,
    chunk_count  UInt32,
    total_size   Int64,
    sha256       String,
    content_type ${lc},
    data         String${codec_text},
    created_ms   Int64,
    writer_id    String,
    seq          UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, path, upload_id, chunk_index)
SETTINGS index_granularity = 16
;
CREATE TABLE IF NOT EXISTS ${db}.run_logs
(
    run_id     String,
    experiment ${lc},
    time_ms    Int64${codec_delta},
    stream     ${lc},
    logger     ${lc},
    level      Int32,
    message    String${codec_text},
    exc_text   String${codec_text},
    writer_id  String,
    seq        UInt64,
    idx        UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, time_ms, writer_id, seq, idx)
;
CREATE TABLE IF NOT EXISTS ${db}.rejected_events
(
    run_id        String,
    experiment    ${lc},
    reason        ${lc},
    detail        String,
    event_type    ${lc},
    source        ${lc},
    source_offset Int64,
    item          Int32,
    created_ms    Int64,
    rejected_ms   Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, reason, source, source_offset, item)${ttl_rejected}
;
-- Read-your-writes: per (run, writer), the highest seq the ingest has processed.
CREATE TABLE IF NOT EXISTS ${db}.writer_progress
(
    writer_id  String,
    run_id     String,
    experiment ${lc},
    seq        UInt64,
    updated_ms Int64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (run_id, writer_id)
;
