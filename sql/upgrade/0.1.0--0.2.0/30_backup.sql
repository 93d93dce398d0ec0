-- ---------------------------------------------------------------------------
-- Backups keep every table that holds user state
-- ---------------------------------------------------------------------------
-- pg_dump leaves out the tables an extension creates unless they are marked
-- here: then it dumps their rows (CREATE EXTENSION re-creates the tables on
-- restore).  Sequences too, so new ids continue after the restored ones.

SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipelines', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipelines_pipeline_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.offsets', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.manifest', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.manifest_object_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.sources', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.sources_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.quarantine_quarantine_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_dirty', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.candles', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.daily_summary', '');

-- Silver's daily partitions are made by load_bronze(), not by the
-- extension, so pg_dump dumps them (rows included) as tables of their own
-- attached to quotes / trades.  Indexes defined on the partitioned parent
-- broke that: the parent belongs to the extension, so the restore made the
-- partitions' indexes twice (once by ATTACH PARTITION, once from the dump)
-- and failed on each.  So each partition now carries its own indexes, made
-- with it; the parent has none.  Existing partitions keep the indexes they
-- have: detached, they become theirs, and are attached again without.

CREATE FUNCTION stocks_stream._index_silver_partition(parent text, part text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    time_col text := CASE parent WHEN 'quotes' THEN 'quote_time' ELSE 'trade_time' END;
BEGIN
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON stocks_stream.%I (source_topic, source_partition, source_offset, %I)',
                   part || '_source_key', part, time_col);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON stocks_stream.%I (symbol, %I)',
                   part || '_symbol_time_idx', part, time_col);
END;
$$;

DO $$
DECLARE
    parts jsonb;
    part record;
    obj record;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object('parent', p.relname, 'part', c.relname,
                                                 'bound', pg_get_expr(c.relpartbound, c.oid))), '[]')
      INTO parts
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class p ON p.oid = i.inhparent
     WHERE p.relnamespace = 'stocks_stream'::regnamespace AND p.relname IN ('quotes', 'trades');
    FOR part IN SELECT * FROM jsonb_to_recordset(parts) AS x(parent text, part text, bound text) LOOP
        EXECUTE format('ALTER TABLE stocks_stream.%I DETACH PARTITION stocks_stream.%I', part.parent, part.part);
    END LOOP;
    FOR obj IN SELECT conrelid::regclass AS rel, conname FROM pg_constraint
                WHERE conrelid IN ('stocks_stream.quotes'::regclass, 'stocks_stream.trades'::regclass)
                  AND contype = 'u' LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', obj.rel, obj.conname);
    END LOOP;
    FOR obj IN SELECT indexrelid::regclass AS idx FROM pg_index
                WHERE indrelid IN ('stocks_stream.quotes'::regclass, 'stocks_stream.trades'::regclass) LOOP
        EXECUTE format('DROP INDEX %s', obj.idx);
    END LOOP;
    FOR part IN SELECT * FROM jsonb_to_recordset(parts) AS x(parent text, part text, bound text) LOOP
        EXECUTE format('ALTER TABLE stocks_stream.%I ATTACH PARTITION stocks_stream.%I %s', part.parent, part.part, part.bound);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.ensure_day_partition(day date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
    part text;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'day must not be NULL' USING ERRCODE = 'null_value_not_allowed';
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
REVOKE ALL ON FUNCTION stocks_stream._index_silver_partition(text, text) FROM PUBLIC;

COMMENT ON TABLE stocks_stream.quotes IS 'Silver: one row per Finnhub quote loaded from bronze, partitioned by day of quote_time. Each daily partition is unique on its Kafka source (with quote_time) and indexed on (symbol, quote_time).';
COMMENT ON TABLE stocks_stream.trades IS 'Silver: one row per trade loaded from bronze, partitioned by day of trade_time. Each daily partition is unique on its Kafka source (with trade_time) and indexed on (symbol, trade_time).';
