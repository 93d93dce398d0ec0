-- stocks_stream 0.4.0 -> 0.5.0: what an install of 0.4.0 must change before
-- the concern files run again (sql/README.md): new tables and columns, data
-- moved, and a DROP for every function whose arguments or result type
-- changed and every view that lost or reordered columns (CREATE OR REPLACE
-- cannot change those).
--
-- The SQL is kept by concern: every function, view, trigger and grant is
-- made again by the concern files as a fresh install makes it.  0.5.0's new
-- table, as pre_install.sql makes it:
-- ---------------------------------------------------------------------------
-- The durations of refresh_gold(), for the metrics (docs/metrics.md): one
-- row, a histogram each refresh adds itself to
-- (stocks_stream._observe_gold_refresh, sql/metrics.sql).
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.gold_refresh_seconds (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    bucket  bigint[] NOT NULL,
    sum     double precision NOT NULL DEFAULT 0,
    count   bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE stocks_stream.gold_refresh_seconds IS 'How long refresh_gold() took: a histogram of its refreshes (the metric stocks_stream_gold_refresh_seconds).';
COMMENT ON COLUMN stocks_stream.gold_refresh_seconds.bucket IS 'Refreshes per bucket of stocks_stream._gold_refresh_bounds(), not cumulative; the last one past the last bound.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_refresh_seconds', '');


-- ---------------------------------------------------------------------------
-- Parquet archive objects: a pipeline's format, as pre_install.sql makes it;
-- create_pipeline(), alter_pipeline() and their argument check gain a
-- format argument (made again by sql/pipelines.sql).
-- ---------------------------------------------------------------------------
ALTER TABLE stocks_stream.pipelines
    ADD COLUMN format text NOT NULL DEFAULT 'ndjson' CHECK (format IN ('ndjson', 'parquet'));
COMMENT ON TABLE stocks_stream.pipelines IS
    'Archive pipelines: each copies one Kafka topic to S3 as NDJSON or Parquet objects. Managed with create_pipeline(), alter_pipeline(), start_pipeline(), stop_pipeline(), drop_pipeline().';
COMMENT ON COLUMN stocks_stream.pipelines.format IS
    'What objects hold: ''ndjson'' (one message value per line, .ndjson[.gz]) or ''parquet'' (one row per message with its topic, partition, offset, timestamp, key, headers and value, ZSTD, .parquet).';
DROP FUNCTION stocks_stream.create_pipeline(text, text, text, text, integer, bigint, integer, boolean, integer, boolean);
DROP FUNCTION stocks_stream.alter_pipeline(text, text, text, text, integer, bigint, integer, boolean, integer, boolean);
DROP FUNCTION stocks_stream._check_pipeline_args(text, text, text, text, integer, bigint, integer, boolean, integer);
