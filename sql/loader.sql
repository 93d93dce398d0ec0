-- stocks_stream: the bronze loader (bronze objects in S3 -> silver
-- quotes and trades): object keys, daily partitions, retention, loads of a
-- pipeline's manifest or of a bucket's listing, and retries.

-- ---------------------------------------------------------------------------
-- Object keys name the first and the last offset (object_key.c)
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.parse_object_key(
    key text,
    OUT kind text, OUT prefix text, OUT topic text, OUT day date, OUT hour integer,
    OUT partition integer, OUT first_offset bigint, OUT last_offset bigint, OUT compressed boolean)
AS 'MODULE_PATHNAME', 'ss_parse_object_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.parse_object_key IS
    'How the loaders read a bronze object key: kind archive (<prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first>-<last>.ndjson[.gz], day and hour of the first message in UTC), archive_v1 (0.1.0 keys, first offset only: last_offset NULL), python_quote (<symbol>/<unix_ts>.json) or NULL.';

-- ---------------------------------------------------------------------------
-- Silver's daily partitions
-- ---------------------------------------------------------------------------
-- The lock that serialises the creation of a daily partition is taken only
-- when a partition is missing, so loaders never queue behind each other
-- (it is held to the end of the caller's transaction).
CREATE OR REPLACE FUNCTION stocks_stream.ensure_day_partition(day date)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
    part text;
    missing boolean := false;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'stocks_stream.ensure_day_partition: day must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH t IN ARRAY ARRAY['quotes', 'trades'] LOOP
        missing := missing OR to_regclass(format('stocks_stream.%I', t || '_' || to_char(day, 'YYYYMMDD'))) IS NULL;
    END LOOP;
    IF NOT missing THEN
        RETURN;
    END IF;
    -- serialise concurrent loaders creating the same partition
    PERFORM pg_advisory_xact_lock(hashtext('stocks_stream.ensure_day_partition'));
    FOREACH t IN ARRAY ARRAY['quotes', 'trades'] LOOP
        part := t || '_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(format('stocks_stream.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE stocks_stream.%I PARTITION OF stocks_stream.%I FOR VALUES FROM (%L) TO (%L)',
                           part, t, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            PERFORM stocks_stream._index_silver_partition(t, part);
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION stocks_stream.ensure_day_partition IS 'Create the quotes and trades partitions of one UTC day if missing (load_bronze() calls it).';

-- Silver's daily partitions are made by load_bronze(), not by the
-- extension, so pg_dump dumps them (rows included) as tables of their own
-- attached to quotes / trades.  Indexes defined on the partitioned parent
-- broke that: the parent belongs to the extension, so the restore made the
-- partitions' indexes twice (once by ATTACH PARTITION, once from the dump)
-- and failed on each.  So each partition carries its own indexes, made
-- with it; the parent has none.
CREATE OR REPLACE FUNCTION stocks_stream._index_silver_partition(parent text, part text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    time_col text := CASE parent WHEN 'quotes' THEN 'quote_time' ELSE 'trade_time' END;
BEGIN
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON stocks_stream.%I (source_topic, source_partition, source_offset, %I)',
                   part || '_source_key', part, time_col);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON stocks_stream.%I (symbol, %I)',
                   part || '_symbol_time_idx', part, time_col);
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.drop_silver_before(day date)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'stocks_stream.drop_silver_before: day must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass the first day to keep, e.g. current_date - 90.';
    END IF;
    FOR part IN
        SELECT c.relname FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE n.nspname = 'stocks_stream' AND p.relname IN ('quotes', 'trades')
           AND c.relname ~ '_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < day
    LOOP
        EXECUTE format('DROP TABLE stocks_stream.%I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END;
$$;
COMMENT ON FUNCTION stocks_stream.drop_silver_before IS 'Retention: drop the daily silver partitions (quotes and trades) of days before the given day; returns how many were dropped.';

-- ---------------------------------------------------------------------------
-- Loading bronze into silver (loader.c)
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.load_bronze(
    pipeline text DEFAULT NULL, max_objects integer DEFAULT NULL,
    OUT objects_loaded bigint, OUT rows_loaded bigint, OUT rows_duplicate bigint,
    OUT rows_quarantined bigint, OUT objects_failed bigint)
AS 'MODULE_PATHNAME', 'ss_load_bronze' LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.load_bronze IS
    'Load archived objects not loaded yet (of one pipeline, or all) into silver quotes and trades; bad lines go to quarantine. Safe to call concurrently and repeatedly.';

CREATE OR REPLACE FUNCTION stocks_stream.check_bronze_line(line bytea, OUT kind text, OUT reason text)
AS 'MODULE_PATHNAME', 'ss_check_bronze_line' LANGUAGE C STRICT STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.check_bronze_line IS
    'How load_bronze() would take one bronze line: kind quote, trade or invalid, with the quarantine reason.';

CREATE OR REPLACE FUNCTION stocks_stream.load_bronze_prefix(
    bucket text, prefix text, lookback interval DEFAULT NULL,
    OUT objects_loaded bigint, OUT rows_loaded bigint, OUT rows_duplicate bigint,
    OUT rows_quarantined bigint, OUT objects_failed bigint)
AS 'MODULE_PATHNAME', 'ss_load_bronze_prefix' LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.load_bronze_prefix IS
    'Load into silver what an S3 listing of bucket/prefix finds, with or without manifest rows of this database: archive objects keep their Kafka source; objects of the old Python pipeline (<symbol>/<unix_ts>.json) are their own source. Found objects join the manifest, so a rerun loads nothing twice. lookback NULL lists the whole prefix; an interval lists each archive topic folder only from the last hour listed there (listing_marks) less the lookback: cheap enough to call every minute from a warehouse loading several instances.';

CREATE OR REPLACE FUNCTION stocks_stream.retry_failed_objects(pipeline text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH retried AS (
        UPDATE stocks_stream.manifest m
           SET load_attempts = 0
         WHERE m.loaded_at IS NULL AND m.load_error IS NOT NULL
           AND (retry_failed_objects.pipeline IS NULL OR m.pipeline = retry_failed_objects.pipeline)
        RETURNING 1)
    SELECT count(*) FROM retried
$$;
COMMENT ON FUNCTION stocks_stream.retry_failed_objects(text) IS
    'Makes the objects whose loads failed (of one pipeline, or all) pending again at once, those past stocks_stream.load_max_attempts included; returns how many.';
