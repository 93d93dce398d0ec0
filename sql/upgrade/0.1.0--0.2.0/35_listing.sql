-- ---------------------------------------------------------------------------
-- load_bronze_prefix(): incremental listings for a warehouse of instances
-- ---------------------------------------------------------------------------

CREATE TABLE stocks_stream.listing_marks (
    bucket    text NOT NULL,
    folder    text NOT NULL,
    last_hour timestamp NOT NULL,
    listed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, folder)
);
COMMENT ON TABLE stocks_stream.listing_marks IS
    'Per archive topic folder (<prefix>/<topic>/) of a bucket, the latest dt=/hour= folder load_bronze_prefix() has listed: where an incremental listing (with a lookback) starts again.';
COMMENT ON COLUMN stocks_stream.listing_marks.last_hour IS 'The latest hour folder seen (UTC, from the object keys).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.listing_marks', '');

DROP FUNCTION stocks_stream.load_bronze_prefix(text, text);
CREATE FUNCTION stocks_stream.load_bronze_prefix(
    bucket text, prefix text, lookback interval DEFAULT NULL,
    OUT objects_loaded bigint, OUT rows_loaded bigint, OUT rows_duplicate bigint,
    OUT rows_quarantined bigint, OUT objects_failed bigint)
AS 'MODULE_PATHNAME', 'ss_load_bronze_prefix' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION stocks_stream.load_bronze_prefix IS
    'Load into silver what an S3 listing of bucket/prefix finds, with or without manifest rows of this database: archive objects keep their Kafka source; objects of the old Python pipeline (<symbol>/<unix_ts>.json) are their own source. Found objects join the manifest, so a rerun loads nothing twice. lookback NULL lists the whole prefix; an interval lists each archive topic folder only from the last hour listed there (listing_marks) less the lookback: cheap enough to call every minute from a warehouse loading several instances.';
REVOKE ALL ON FUNCTION stocks_stream.load_bronze_prefix(text, text, interval) FROM PUBLIC;
