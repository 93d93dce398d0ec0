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

-- ---------------------------------------------------------------------------
-- The lake: silver days tiered to S3 as Parquet (sql/lake.sql, docs/lake.md),
-- as pre_install.sql makes it
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.lake_retention (
    table_name text PRIMARY KEY CHECK (table_name IN ('quotes', 'trades')),
    hot_days   integer NOT NULL CHECK (hot_days >= 1),
    bucket     text NOT NULL,
    prefix     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.lake_retention IS 'Retention policies: the newest hot_days UTC days of a silver table stay in Postgres; older days are tiered to s3://bucket/prefix/silver/ by tier_to_lake(). Set with set_lake_retention(), removed with drop_lake_retention().';
COMMENT ON COLUMN stocks_stream.lake_retention.hot_days IS 'UTC days kept in Postgres: today and the hot_days - 1 days before it.';
COMMENT ON COLUMN stocks_stream.lake_retention.prefix IS 'Key prefix of the objects: <prefix>/silver/<table>/day=YYYY-MM-DD/<table>-YYYY-MM-DD-<n>.parquet.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_retention', '');

CREATE TABLE stocks_stream.lake_days (
    table_name   text NOT NULL CHECK (table_name IN ('quotes', 'trades')),
    day          date NOT NULL,
    round        integer NOT NULL DEFAULT 1 CHECK (round >= 1),
    first_part   integer NOT NULL DEFAULT 1 CHECK (first_part >= 1),
    state        text NOT NULL CHECK (state IN ('frozen', 'exported', 'verified', 'dropped', 'failed')),
    failed_step  text CHECK (failed_step IN ('export', 'verify', 'drop')),
    reason       text,
    failed_at    timestamptz,
    dropped_rows bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);
COMMENT ON TABLE stocks_stream.lake_days IS 'Where tiering stands for each silver day it has touched: frozen (no more rows taken), exported, verified, dropped (in the lake only), or failed (still in Postgres, with the reason). A day''s partition made again by late rows starts a new round.';
COMMENT ON COLUMN stocks_stream.lake_days.round IS 'How many times the day has been tiered: each round exports the rows its partition held, into objects numbered from first_part.';
COMMENT ON COLUMN stocks_stream.lake_days.first_part IS 'The n of the first object of the current round (<table>-YYYY-MM-DD-<n>.parquet).';
COMMENT ON COLUMN stocks_stream.lake_days.failed_step IS 'The step that failed: export, verify or drop; the next tier_to_lake() redoes it.';
COMMENT ON COLUMN stocks_stream.lake_days.reason IS 'Why the step failed (a verification names the symbol and the counts).';
COMMENT ON COLUMN stocks_stream.lake_days.dropped_rows IS 'Rows of the day dropped from Postgres, all rounds.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_days', '');

CREATE TABLE stocks_stream.lake_objects (
    lake_object_id      bigserial PRIMARY KEY,
    table_name          text NOT NULL CHECK (table_name IN ('quotes', 'trades')),
    day                 date NOT NULL,
    bucket              text NOT NULL,
    object_key          text NOT NULL,
    row_count           bigint NOT NULL,
    bytes               bigint NOT NULL,
    written_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    iceberg_snapshot_id bigint,
    round               integer NOT NULL DEFAULT 1,
    part                integer CHECK (part >= 1),
    UNIQUE (bucket, object_key),
    UNIQUE (table_name, day, part)
);
COMMENT ON TABLE stocks_stream.lake_objects IS 'One row per Parquet object tier_to_lake() wrote to S3 for a silver day. A day leaves Postgres only when every object of it is verified and registered in an Iceberg snapshot.';
COMMENT ON COLUMN stocks_stream.lake_objects.verified_at IS 'When the object was read back from S3 and matched the day in Postgres (rows and checksum per symbol).';
COMMENT ON COLUMN stocks_stream.lake_objects.iceberg_snapshot_id IS 'The Iceberg snapshot that registered the object; NULL until then.';
COMMENT ON COLUMN stocks_stream.lake_objects.round IS 'The round of the day (lake_days.round) that wrote it.';
COMMENT ON COLUMN stocks_stream.lake_objects.part IS 'n of <table>-YYYY-MM-DD-<n>.parquet (NULL for an object tier_to_lake() did not write).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_objects', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_objects_lake_object_id_seq', '');

CREATE TABLE stocks_stream.lake_object_symbols (
    lake_object_id bigint NOT NULL REFERENCES stocks_stream.lake_objects ON DELETE CASCADE,
    symbol         text NOT NULL,
    row_count      bigint NOT NULL,
    checksum       bigint NOT NULL,
    PRIMARY KEY (lake_object_id, symbol)
);
COMMENT ON TABLE stocks_stream.lake_object_symbols IS 'Rows and checksum per symbol of each lake object, as written; verification recomputes both from the object and from the partition.';
COMMENT ON COLUMN stocks_stream.lake_object_symbols.checksum IS 'Sum (modulo 2^64, as a signed bigint) of a 64-bit hash of each row''s values (src/lake/silver_object.c).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_object_symbols', '');

-- 0.5.0's Iceberg catalog and lake commit records, as pre_install.sql makes them

-- ---------------------------------------------------------------------------
-- The lake's Iceberg catalog (docs/lake.md, "Iceberg tables"): the schema
-- stocks_stream_lake holds exactly the two tables of Iceberg's JDBC catalog,
-- with the columns and keys Java's JdbcCatalog and pyiceberg's SqlCatalog
-- make (schema v1), so Spark, Trino and pyiceberg use them as they are,
-- pointed at this schema.  The commit records tie each snapshot of those
-- tables to the objects it registered, exactly once.
-- ---------------------------------------------------------------------------
CREATE SCHEMA stocks_stream_lake;
COMMENT ON SCHEMA stocks_stream_lake IS
    'stocks_stream lake: the Iceberg JDBC/SQL catalog of the bronze and silver Iceberg tables (catalog name stocks_stream).';
CREATE TABLE stocks_stream_lake.iceberg_tables (
    catalog_name               varchar(255) NOT NULL,
    table_namespace            varchar(255) NOT NULL,
    table_name                 varchar(255) NOT NULL,
    metadata_location          varchar(1000),
    previous_metadata_location varchar(1000),
    iceberg_type               varchar(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
COMMENT ON TABLE stocks_stream_lake.iceberg_tables IS
    'Iceberg JDBC catalog: one row per table, pointing at its current metadata file on S3 (written by scripts/lake-commit).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream_lake.iceberg_tables', '');
CREATE TABLE stocks_stream_lake.iceberg_namespace_properties (
    catalog_name   varchar(255) NOT NULL,
    namespace      varchar(255) NOT NULL,
    property_key   varchar(255) NOT NULL,
    property_value varchar(1000),
    PRIMARY KEY (catalog_name, namespace, property_key)
);
COMMENT ON TABLE stocks_stream_lake.iceberg_namespace_properties IS
    'Iceberg JDBC catalog: the namespaces (bronze, silver) and their properties.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream_lake.iceberg_namespace_properties', '');

CREATE TABLE stocks_stream.lake_commits (
    commit_id       bigserial PRIMARY KEY,
    table_namespace text NOT NULL CHECK (table_namespace IN ('bronze', 'silver')),
    table_name      text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    snapshot_id     bigint UNIQUE,
    committed_at    timestamptz,
    CHECK ((snapshot_id IS NULL) = (committed_at IS NULL))
);
COMMENT ON TABLE stocks_stream.lake_commits IS
    'One row per batch of objects registered in an Iceberg table: claimed first, then committed as the snapshot whose summary property stocks-stream.commit-id names this row.';
COMMENT ON COLUMN stocks_stream.lake_commits.snapshot_id IS
    'The Iceberg snapshot that registered the batch; NULL while claimed and not yet known to be committed (the next scripts/lake-commit looks it up or commits it).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commits', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commits_commit_id_seq', '');
CREATE INDEX lake_commits_pending_idx ON stocks_stream.lake_commits (commit_id) WHERE snapshot_id IS NULL;
CREATE TABLE stocks_stream.lake_commit_objects (
    bucket     text NOT NULL,
    object_key text NOT NULL,
    commit_id  bigint NOT NULL REFERENCES stocks_stream.lake_commits,
    PRIMARY KEY (bucket, object_key)
);
COMMENT ON TABLE stocks_stream.lake_commit_objects IS
    'The objects of each lake commit: an object is in one commit at most, so in one snapshot at most.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commit_objects', '');
CREATE INDEX lake_commit_objects_commit_idx ON stocks_stream.lake_commit_objects (commit_id);
