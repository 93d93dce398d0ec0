-- stocks_stream: archive pipelines (Kafka -> S3): create, alter, start,
-- stop, drop, reset their offsets, and their argument checks.

-- ---------------------------------------------------------------------------
-- Argument checks
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream._check_name(what text, p_name text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'stocks_stream: invalid % name %', what, coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 63 lower-case letters, digits or underscores, starting with a letter or underscore.';
    END IF;
END;
$$;

-- S3's rule for a bucket name, written once in C (src/s3/s3_bucket.c)
CREATE OR REPLACE FUNCTION stocks_stream._check_bucket(bucket text) RETURNS void
AS 'MODULE_PATHNAME', 'ss_check_bucket' LANGUAGE C IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION stocks_stream._check_topic(p_topic text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_topic IS NULL OR p_topic !~ '^[A-Za-z0-9._-]{1,249}$' OR p_topic IN ('.', '..') THEN
        RAISE EXCEPTION 'stocks_stream: invalid Kafka topic name %', coalesce('"' || p_topic || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Kafka topic names are 1 to 249 characters of letters, digits, ''.'', ''_'' and ''-''.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._check_pipeline_args(
    p_name text, p_topic text, p_bucket text, p_key_prefix text,
    p_batch_max_messages integer, p_batch_max_bytes bigint,
    p_batch_max_age_ms integer, p_gzip boolean, p_workers integer, p_format text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    max_workers integer := current_setting('stocks_stream.max_workers')::integer;
BEGIN
    PERFORM stocks_stream._check_name('pipeline', p_name);
    PERFORM stocks_stream._check_topic(p_topic);
    PERFORM stocks_stream._check_bucket(p_bucket);
    IF p_key_prefix IS NULL OR length(p_key_prefix) > 512 OR p_key_prefix ~ '^/|/$|//'
       OR p_key_prefix ~ '[[:cntrl:]\\{}^%`"<>#|~\[\]]' THEN
        RAISE EXCEPTION 'stocks_stream: invalid key prefix %', coalesce('"' || p_key_prefix || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use up to 512 characters without leading, trailing or doubled ''/'' and without control or URL-unsafe characters; '''' for none.';
    END IF;
    IF p_batch_max_messages IS NULL OR p_batch_max_messages NOT BETWEEN 1 AND 10000000 THEN
        RAISE EXCEPTION 'stocks_stream: batch_max_messages must be between 1 and 10000000, got %', coalesce(p_batch_max_messages::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_batch_max_bytes IS NULL OR p_batch_max_bytes NOT BETWEEN 1024 AND 536870912 THEN
        RAISE EXCEPTION 'stocks_stream: batch_max_bytes must be between 1024 and 536870912 (512 MB), got %', coalesce(p_batch_max_bytes::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_batch_max_age_ms IS NULL OR p_batch_max_age_ms NOT BETWEEN 10 AND 3600000 THEN
        RAISE EXCEPTION 'stocks_stream: batch_max_age_ms must be between 10 and 3600000 (one hour), got %', coalesce(p_batch_max_age_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_gzip IS NULL THEN
        RAISE EXCEPTION 'stocks_stream: gzip must be true or false, not NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_format IS NULL OR p_format NOT IN ('ndjson', 'parquet') THEN
        RAISE EXCEPTION 'stocks_stream: format must be ''ndjson'' or ''parquet'', got %', coalesce('"' || p_format || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''ndjson'' writes one message value per line (gzip optional); ''parquet'' one row per message, ZSTD-compressed.';
    END IF;
    IF p_format = 'parquet' AND p_gzip THEN
        RAISE EXCEPTION 'stocks_stream: gzip applies to NDJSON objects, not to format ''parquet'''
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Parquet objects are compressed inside (ZSTD): leave gzip false.';
    END IF;
    IF p_workers IS NULL OR p_workers NOT BETWEEN 1 AND max_workers THEN
        RAISE EXCEPTION 'stocks_stream: workers must be between 1 and stocks_stream.max_workers (%), got %', max_workers, coalesce(p_workers::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Workers beyond the topic''s partition count stay idle; raise stocks_stream.max_workers for more.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._pipeline(p_name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines;
BEGIN
    SELECT * INTO p FROM stocks_stream.pipelines WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stocks_stream: pipeline % does not exist', coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM stocks_stream.pipelines lists the pipelines.';
    END IF;
    RETURN p;
END;
$$;

-- ---------------------------------------------------------------------------
-- Pipelines and sources run only in the database the launcher serves
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream._check_served_database(what text, p_name text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_database() <> current_setting('stocks_stream.database', true) THEN
        RAISE EXCEPTION 'stocks_stream: cannot start % "%": no stocks_stream launcher serves database "%"',
            what, p_name, current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('The launcher runs the pipelines and sources of the database stocks_stream.database names: start it from that database, or set stocks_stream.database = ''%s'' in postgresql.conf and restart the server.',
                                current_database());
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------
-- Pipeline API
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.create_pipeline(
    name text, topic text, bucket text,
    key_prefix text DEFAULT 'bronze',
    batch_max_messages integer DEFAULT 100000,
    batch_max_bytes bigint DEFAULT 16777216,
    batch_max_age_ms integer DEFAULT 10000,
    gzip boolean DEFAULT false,
    workers integer DEFAULT 1,
    realtime boolean DEFAULT false,
    format text DEFAULT 'ndjson')
RETURNS stocks_stream.pipelines LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines;
BEGIN
    PERFORM stocks_stream._check_pipeline_args(name, topic, bucket, key_prefix,
        batch_max_messages, batch_max_bytes, batch_max_age_ms, gzip, workers, format);
    IF EXISTS (SELECT 1 FROM stocks_stream.pipelines pl WHERE pl.name = create_pipeline.name) THEN
        RAISE EXCEPTION 'stocks_stream.create_pipeline: pipeline "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use alter_pipeline() to change it, or drop_pipeline() first.';
    END IF;
    IF realtime IS NULL THEN
        RAISE EXCEPTION 'stocks_stream.create_pipeline: realtime must be true or false, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO stocks_stream.pipelines AS pl (name, topic, bucket, key_prefix, batch_max_messages,
        batch_max_bytes, batch_max_age_ms, gzip, workers, realtime, format)
    VALUES (name, topic, bucket, key_prefix, batch_max_messages,
        batch_max_bytes, batch_max_age_ms, gzip, workers, realtime, format)
    RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.create_pipeline IS
    'Create a (stopped) archive pipeline from a Kafka topic to an S3 bucket; start it with start_pipeline().';

CREATE OR REPLACE FUNCTION stocks_stream.alter_pipeline(
    name text,
    topic text DEFAULT NULL, bucket text DEFAULT NULL, key_prefix text DEFAULT NULL,
    batch_max_messages integer DEFAULT NULL, batch_max_bytes bigint DEFAULT NULL,
    batch_max_age_ms integer DEFAULT NULL, gzip boolean DEFAULT NULL,
    workers integer DEFAULT NULL, realtime boolean DEFAULT NULL, format text DEFAULT NULL)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    p.topic := coalesce(topic, p.topic);
    p.bucket := coalesce(bucket, p.bucket);
    p.key_prefix := coalesce(key_prefix, p.key_prefix);
    p.batch_max_messages := coalesce(batch_max_messages, p.batch_max_messages);
    p.batch_max_bytes := coalesce(batch_max_bytes, p.batch_max_bytes);
    p.batch_max_age_ms := coalesce(batch_max_age_ms, p.batch_max_age_ms);
    p.gzip := coalesce(gzip, p.gzip);
    p.workers := coalesce(workers, p.workers);
    p.realtime := coalesce(realtime, p.realtime);
    p.format := coalesce(format, p.format);
    PERFORM stocks_stream._check_pipeline_args(p.name, p.topic, p.bucket, p.key_prefix,
        p.batch_max_messages, p.batch_max_bytes, p.batch_max_age_ms, p.gzip, p.workers, p.format);
    UPDATE stocks_stream.pipelines pl
       SET topic = p.topic, bucket = p.bucket, key_prefix = p.key_prefix,
           batch_max_messages = p.batch_max_messages, batch_max_bytes = p.batch_max_bytes,
           batch_max_age_ms = p.batch_max_age_ms, gzip = p.gzip, workers = p.workers,
           realtime = p.realtime, format = p.format, generation = pl.generation + 1, updated_at = now()
     WHERE pl.pipeline_id = p.pipeline_id
    RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.alter_pipeline IS
    'Change a pipeline''s settings (NULL keeps a setting); running workers restart with the new settings and resume from the stored offsets.';

CREATE OR REPLACE FUNCTION stocks_stream.start_pipeline(name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    PERFORM stocks_stream._check_served_database('pipeline', p.name);
    UPDATE stocks_stream.pipelines SET running = true, updated_at = now()
     WHERE pipeline_id = p.pipeline_id RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.start_pipeline IS
    'Start a pipeline''s workers (within stocks_stream.launcher_naptime); it resumes from the stored offsets.';

CREATE OR REPLACE FUNCTION stocks_stream.stop_pipeline(name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    UPDATE stocks_stream.pipelines SET running = false, updated_at = now()
     WHERE pipeline_id = p.pipeline_id RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.stop_pipeline IS
    'Stop a pipeline''s workers; messages not yet in S3 are archived after the next start.';

CREATE OR REPLACE FUNCTION stocks_stream.drop_pipeline(name text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    DELETE FROM stocks_stream.pipelines WHERE pipeline_id = p.pipeline_id;
END;
$$;
COMMENT ON FUNCTION stocks_stream.drop_pipeline IS
    'Drop a pipeline and its stored offsets (its workers stop); manifest rows and S3 objects are kept.';

-- ---------------------------------------------------------------------------
-- Where a pipeline starts again
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.reset_pipeline_offsets(pipeline text, start text,
    OUT partition integer, OUT previous_offset bigint, OUT start_offset bigint, OUT offsets_skipped bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_reset_pipeline_offsets' LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.reset_pipeline_offsets(text, text) IS
    'Set where a pipeline''s partitions start: ''earliest'', ''latest'' or a timestamp (the first record at or after it). Resumes a pipeline whose topic was re-created (its objects then go to <topic>~<topic id>/). Never goes back before what was archived of the same topic; every offset skipped is recorded in archive_gaps. The workers restart.';

CREATE OR REPLACE FUNCTION stocks_stream.reset_pipeline_offsets(pipeline text, start timestamptz,
    OUT partition integer, OUT previous_offset bigint, OUT start_offset bigint, OUT offsets_skipped bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_reset_pipeline_offsets' LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.reset_pipeline_offsets(text, timestamptz) IS
    'reset_pipeline_offsets(pipeline, start) from the first record at or after a time.';

-- Installed (or updated) where no launcher runs: say so now, not when
-- nothing happens after start_pipeline().
DO $$
BEGIN
    IF pg_catalog.current_database() <> pg_catalog.current_setting('stocks_stream.database', true) THEN
        RAISE WARNING 'stocks_stream.reset_pipeline_offsets: no stocks_stream launcher serves database "%"', pg_catalog.current_database()
            USING DETAIL = pg_catalog.format('stocks_stream.database is "%s": pipelines and sources of this database cannot run.',
                                  pg_catalog.current_setting('stocks_stream.database', true)),
                  HINT = pg_catalog.format('Set stocks_stream.database = ''%s'' in postgresql.conf and restart the server to run them here.',
                                pg_catalog.current_database());
    END IF;
END;
$$;
