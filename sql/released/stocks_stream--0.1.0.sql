-- stocks_stream 0.1.0: archive pipelines (Kafka -> S3 bronze), their stored
-- offsets, the object manifest, and the status views.
\echo Use "CREATE EXTENSION stocks_stream" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

CREATE TABLE stocks_stream.pipelines (
    pipeline_id        serial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    topic              text NOT NULL,
    bucket             text NOT NULL,
    key_prefix         text NOT NULL DEFAULT 'bronze',
    batch_max_messages integer NOT NULL DEFAULT 100000,
    batch_max_bytes    bigint NOT NULL DEFAULT 16777216,
    batch_max_age_ms   integer NOT NULL DEFAULT 10000,
    gzip               boolean NOT NULL DEFAULT false,
    workers            integer NOT NULL DEFAULT 1,
    realtime           boolean NOT NULL DEFAULT false,
    running            boolean NOT NULL DEFAULT false,
    generation         integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.pipelines IS
    'Archive pipelines: each copies one Kafka topic to S3 as NDJSON objects. Managed with create_pipeline(), alter_pipeline(), start_pipeline(), stop_pipeline(), drop_pipeline().';
COMMENT ON COLUMN stocks_stream.pipelines.name IS 'Pipeline name; also names the Kafka consumer group stocks_stream.<name>.';
COMMENT ON COLUMN stocks_stream.pipelines.topic IS 'Kafka topic archived.';
COMMENT ON COLUMN stocks_stream.pipelines.bucket IS 'S3 bucket the objects go to (created when missing).';
COMMENT ON COLUMN stocks_stream.pipelines.key_prefix IS 'Key prefix: objects are <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first offset>.ndjson[.gz].';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_messages IS 'An object is written once it holds this many messages.';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_bytes IS 'An object is written before it would pass this many bytes; also the bound on what one worker buffers.';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_age_ms IS 'An object is written once its oldest message has waited this long.';
COMMENT ON COLUMN stocks_stream.pipelines.gzip IS 'Whether objects are gzip-compressed (.ndjson.gz).';
COMMENT ON COLUMN stocks_stream.pipelines.workers IS 'Number of archive workers (Kafka consumers in the group) for this pipeline.';
COMMENT ON COLUMN stocks_stream.pipelines.realtime IS 'Whether the worker loads each object into silver (load_bronze) right after archiving it.';
COMMENT ON COLUMN stocks_stream.pipelines.running IS 'Whether the launcher keeps the workers running.';
COMMENT ON COLUMN stocks_stream.pipelines.generation IS 'Bumped by alter_pipeline(); running workers of an older generation are restarted.';

CREATE TABLE stocks_stream.offsets (
    pipeline_id integer NOT NULL REFERENCES stocks_stream.pipelines ON DELETE CASCADE,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, topic, partition)
);
COMMENT ON TABLE stocks_stream.offsets IS
    'The next Kafka offset to archive per pipeline partition: the source of truth the workers resume from. Advanced in the same transaction as the manifest row, after the object is in S3.';

CREATE TABLE stocks_stream.manifest (
    object_id     bigserial PRIMARY KEY,
    pipeline      text NOT NULL,
    bucket        text NOT NULL,
    object_key    text NOT NULL,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    first_offset  bigint NOT NULL,
    last_offset   bigint NOT NULL,
    message_count bigint NOT NULL,
    bytes         bigint NOT NULL,
    etag          text NOT NULL,
    compressed    boolean NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, object_key),
    CHECK (last_offset >= first_offset AND message_count > 0)
);
CREATE INDEX manifest_source_idx ON stocks_stream.manifest (topic, partition, first_offset);
COMMENT ON TABLE stocks_stream.manifest IS
    'One row per archived S3 object (bronze). Line N of an object holds the message at offset first_offset + N.';
COMMENT ON COLUMN stocks_stream.manifest.bytes IS 'Size of the object as stored (after gzip when compressed).';

-- ---------------------------------------------------------------------------
-- Argument checks
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream._check_name(what text, p_name text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid % name %', what, coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 63 lower-case letters, digits or underscores, starting with a letter or underscore.';
    END IF;
END;
$$;

CREATE FUNCTION stocks_stream._check_topic(p_topic text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_topic IS NULL OR p_topic !~ '^[A-Za-z0-9._-]{1,249}$' OR p_topic IN ('.', '..') THEN
        RAISE EXCEPTION 'invalid Kafka topic name %', coalesce('"' || p_topic || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Kafka topic names are 1 to 249 characters of letters, digits, ''.'', ''_'' and ''-''.';
    END IF;
END;
$$;

CREATE FUNCTION stocks_stream._check_pipeline_args(
    p_name text, p_topic text, p_bucket text, p_key_prefix text,
    p_batch_max_messages integer, p_batch_max_bytes bigint,
    p_batch_max_age_ms integer, p_gzip boolean, p_workers integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    max_workers integer := current_setting('stocks_stream.max_workers')::integer;
BEGIN
    PERFORM stocks_stream._check_name('pipeline', p_name);
    PERFORM stocks_stream._check_topic(p_topic);
    IF p_bucket IS NULL OR p_bucket !~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
       OR p_bucket ~ '\.\.' OR p_bucket ~ '^\d+\.\d+\.\d+\.\d+$' THEN
        RAISE EXCEPTION 'invalid S3 bucket name %', coalesce('"' || p_bucket || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'S3 bucket names are 3 to 63 lower-case letters, digits, ''.'' and ''-'', starting and ending with a letter or digit.';
    END IF;
    IF p_key_prefix IS NULL OR length(p_key_prefix) > 512 OR p_key_prefix ~ '^/|/$|//'
       OR p_key_prefix ~ '[[:cntrl:]\\{}^%`"<>#|~\[\]]' THEN
        RAISE EXCEPTION 'invalid key prefix %', coalesce('"' || p_key_prefix || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use up to 512 characters without leading, trailing or doubled ''/'' and without control or URL-unsafe characters; '''' for none.';
    END IF;
    IF p_batch_max_messages IS NULL OR p_batch_max_messages NOT BETWEEN 1 AND 10000000 THEN
        RAISE EXCEPTION 'batch_max_messages must be between 1 and 10000000, got %', coalesce(p_batch_max_messages::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_batch_max_bytes IS NULL OR p_batch_max_bytes NOT BETWEEN 1024 AND 536870912 THEN
        RAISE EXCEPTION 'batch_max_bytes must be between 1024 and 536870912 (512 MB), got %', coalesce(p_batch_max_bytes::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_batch_max_age_ms IS NULL OR p_batch_max_age_ms NOT BETWEEN 10 AND 3600000 THEN
        RAISE EXCEPTION 'batch_max_age_ms must be between 10 and 3600000 (one hour), got %', coalesce(p_batch_max_age_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_gzip IS NULL THEN
        RAISE EXCEPTION 'gzip must be true or false, not NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_workers IS NULL OR p_workers NOT BETWEEN 1 AND max_workers THEN
        RAISE EXCEPTION 'workers must be between 1 and stocks_stream.max_workers (%), got %', max_workers, coalesce(p_workers::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Workers beyond the topic''s partition count stay idle; raise stocks_stream.max_workers for more.';
    END IF;
END;
$$;

CREATE FUNCTION stocks_stream._pipeline(p_name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines;
BEGIN
    SELECT * INTO p FROM stocks_stream.pipelines WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pipeline % does not exist', coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM stocks_stream.pipelines lists the pipelines.';
    END IF;
    RETURN p;
END;
$$;

-- ---------------------------------------------------------------------------
-- Pipeline API
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream.create_pipeline(
    name text, topic text, bucket text,
    key_prefix text DEFAULT 'bronze',
    batch_max_messages integer DEFAULT 100000,
    batch_max_bytes bigint DEFAULT 16777216,
    batch_max_age_ms integer DEFAULT 10000,
    gzip boolean DEFAULT false,
    workers integer DEFAULT 1,
    realtime boolean DEFAULT false)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines;
BEGIN
    PERFORM stocks_stream._check_pipeline_args(name, topic, bucket, key_prefix,
        batch_max_messages, batch_max_bytes, batch_max_age_ms, gzip, workers);
    IF EXISTS (SELECT 1 FROM stocks_stream.pipelines pl WHERE pl.name = create_pipeline.name) THEN
        RAISE EXCEPTION 'pipeline "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use alter_pipeline() to change it, or drop_pipeline() first.';
    END IF;
    IF realtime IS NULL THEN
        RAISE EXCEPTION 'realtime must be true or false, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO stocks_stream.pipelines AS pl (name, topic, bucket, key_prefix, batch_max_messages,
        batch_max_bytes, batch_max_age_ms, gzip, workers, realtime)
    VALUES (name, topic, bucket, key_prefix, batch_max_messages,
        batch_max_bytes, batch_max_age_ms, gzip, workers, realtime)
    RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.create_pipeline IS
    'Create a (stopped) archive pipeline from a Kafka topic to an S3 bucket; start it with start_pipeline().';

CREATE FUNCTION stocks_stream.alter_pipeline(
    name text,
    topic text DEFAULT NULL, bucket text DEFAULT NULL, key_prefix text DEFAULT NULL,
    batch_max_messages integer DEFAULT NULL, batch_max_bytes bigint DEFAULT NULL,
    batch_max_age_ms integer DEFAULT NULL, gzip boolean DEFAULT NULL,
    workers integer DEFAULT NULL, realtime boolean DEFAULT NULL)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
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
    PERFORM stocks_stream._check_pipeline_args(p.name, p.topic, p.bucket, p.key_prefix,
        p.batch_max_messages, p.batch_max_bytes, p.batch_max_age_ms, p.gzip, p.workers);
    UPDATE stocks_stream.pipelines pl
       SET topic = p.topic, bucket = p.bucket, key_prefix = p.key_prefix,
           batch_max_messages = p.batch_max_messages, batch_max_bytes = p.batch_max_bytes,
           batch_max_age_ms = p.batch_max_age_ms, gzip = p.gzip, workers = p.workers,
           realtime = p.realtime, generation = pl.generation + 1, updated_at = now()
     WHERE pl.pipeline_id = p.pipeline_id
    RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.alter_pipeline IS
    'Change a pipeline''s settings (NULL keeps a setting); running workers restart with the new settings and resume from the stored offsets.';

CREATE FUNCTION stocks_stream.start_pipeline(name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    UPDATE stocks_stream.pipelines SET running = true, updated_at = now()
     WHERE pipeline_id = p.pipeline_id RETURNING * INTO p;
    RETURN p;
END;
$$;
COMMENT ON FUNCTION stocks_stream.start_pipeline IS
    'Start a pipeline''s workers (within stocks_stream.launcher_naptime); it resumes from the stored offsets.';

CREATE FUNCTION stocks_stream.stop_pipeline(name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
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

CREATE FUNCTION stocks_stream.drop_pipeline(name text)
RETURNS void LANGUAGE plpgsql AS $$
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
-- Status
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream.worker_status_internal(
    kind text,
    OUT owner text, OUT worker integer, OUT pid integer, OUT state text,
    OUT detail text, OUT counters bigint[], OUT started_at timestamptz,
    OUT last_activity timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT owner_id integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_worker_status' LANGUAGE C STRICT VOLATILE;

CREATE VIEW stocks_stream.worker_status AS
    SELECT w.owner AS pipeline, w.worker, w.pid, w.state, w.detail AS assigned_partitions,
           w.counters[1] AS messages_archived, w.counters[2] AS bytes_archived,
           w.counters[3] AS objects_written, w.counters[4] AS lag, w.started_at,
           w.last_activity AS last_flush, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('archive') w
      JOIN stocks_stream.pipelines p ON p.pipeline_id = w.owner_id AND p.name = w.owner
     ORDER BY w.owner, w.worker;
COMMENT ON VIEW stocks_stream.worker_status IS
    'One row per running archive worker of this database''s pipelines: state, assigned Kafka partitions, what it archived, and its last error.';

CREATE FUNCTION stocks_stream.consumer_lag_internal(
    OUT pipeline text, OUT topic text, OUT partition integer, OUT stored_next_offset bigint,
    OUT low_watermark bigint, OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_consumer_lag' LANGUAGE C STRICT VOLATILE;

CREATE VIEW stocks_stream.consumer_lag AS
    SELECT pipeline, topic, partition, stored_next_offset, high_watermark, lag
      FROM stocks_stream.consumer_lag_internal();
COMMENT ON VIEW stocks_stream.consumer_lag IS
    'Per pipeline partition: the next offset stored in Postgres, Kafka''s high watermark, and the messages not yet archived.';


-- ---------------------------------------------------------------------------
-- Ingest sources (Finnhub and the simulator -> Kafka)
-- ---------------------------------------------------------------------------

CREATE TABLE stocks_stream.sources (
    source_id        serial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    kind             text NOT NULL CHECK (kind IN ('simulator', 'finnhub_quotes', 'finnhub_trades')),
    symbols          text[] NOT NULL,
    topic            text NOT NULL,
    poll_interval_ms integer NOT NULL DEFAULT 60000,
    options          jsonb NOT NULL DEFAULT '{}',
    running          boolean NOT NULL DEFAULT false,
    generation       integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.sources IS
    'Ingest sources: each runs one worker that produces market data to a Kafka topic. Managed with create_source(), alter_source(), start_source(), stop_source(), drop_source().';
COMMENT ON COLUMN stocks_stream.sources.kind IS 'simulator (built-in market simulator), finnhub_quotes (REST /quote polling) or finnhub_trades (trade WebSocket).';
COMMENT ON COLUMN stocks_stream.sources.symbols IS 'Symbols to fetch, subscribe to, or simulate.';
COMMENT ON COLUMN stocks_stream.sources.topic IS 'Kafka topic produced to; the message key is the symbol.';
COMMENT ON COLUMN stocks_stream.sources.poll_interval_ms IS 'finnhub_quotes: how often each symbol is polled (one cycle over all symbols).';
COMMENT ON COLUMN stocks_stream.sources.options IS 'Kind-specific options; see stocks_stream.create_source().';

CREATE FUNCTION stocks_stream._check_source_args(
    p_name text, p_kind text, p_symbols text[], p_topic text,
    p_poll_interval_ms integer, p_options jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    allowed text[];
    opt record;
    bad text;
    calls_per_minute numeric;
    needed numeric;
BEGIN
    PERFORM stocks_stream._check_name('source', p_name);
    IF p_kind IS NULL OR p_kind NOT IN ('simulator', 'finnhub_quotes', 'finnhub_trades') THEN
        RAISE EXCEPTION 'unknown source kind %', coalesce('"' || p_kind || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use simulator, finnhub_quotes or finnhub_trades.';
    END IF;
    IF p_symbols IS NULL OR cardinality(p_symbols) = 0 THEN
        RAISE EXCEPTION 'a source needs at least one symbol'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass symbols as an array, e.g. ARRAY[''AAPL'', ''MSFT''].';
    END IF;
    IF cardinality(p_symbols) > 500 THEN
        RAISE EXCEPTION 'a source takes at most 500 symbols, got %', cardinality(p_symbols)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s INTO bad FROM unnest(p_symbols) s
     WHERE s IS NULL OR s !~ '^[A-Z0-9][A-Z0-9.:^_/-]{0,31}$' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid symbol %', coalesce('"' || bad || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Symbols are 1 to 32 upper-case letters, digits and . : ^ _ / -, as Finnhub writes them (AAPL, BRK.B, BINANCE:BTCUSDT).';
    END IF;
    SELECT s INTO bad FROM unnest(p_symbols) s GROUP BY s HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'symbol "%" is listed twice', bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM stocks_stream._check_topic(p_topic);
    IF p_poll_interval_ms IS NULL OR p_poll_interval_ms NOT BETWEEN 1000 AND 86400000 THEN
        RAISE EXCEPTION 'poll_interval_ms must be between 1000 and 86400000 (one day), got %', coalesce(p_poll_interval_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_options IS NULL OR jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''{}'' for none.';
    END IF;

    allowed := CASE p_kind
        WHEN 'simulator' THEN ARRAY['seed', 'rate', 'quote_every', 'max_messages']
        WHEN 'finnhub_quotes' THEN ARRAY['calls_per_minute', 'skip_unchanged']
        ELSE ARRAY[]::text[] END;
    FOR opt IN SELECT key, value FROM jsonb_each(p_options) LOOP
        IF NOT opt.key = ANY (allowed) THEN
            RAISE EXCEPTION 'unknown option "%" for a % source', opt.key, p_kind
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN cardinality(allowed) = 0 THEN 'This kind takes no options.'
                                  ELSE 'Options of this kind: ' || array_to_string(allowed, ', ') || '.' END;
        END IF;
        IF (opt.key = 'skip_unchanged' AND jsonb_typeof(opt.value) <> 'boolean')
           OR (opt.key <> 'skip_unchanged' AND jsonb_typeof(opt.value) <> 'number')
           OR (opt.key = 'seed' AND (opt.value::numeric <> trunc(opt.value::numeric)
                                     OR opt.value::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807))
           OR (opt.key = 'rate' AND opt.value::numeric NOT BETWEEN 0 AND 1000000)
           OR (opt.key = 'quote_every' AND (opt.value::numeric <> trunc(opt.value::numeric)
                                            OR opt.value::numeric NOT BETWEEN 1 AND 1000000))
           OR (opt.key = 'max_messages' AND (opt.value::numeric <> trunc(opt.value::numeric)
                                             OR opt.value::numeric NOT BETWEEN 0 AND 9223372036854775807))
           OR (opt.key = 'calls_per_minute' AND (opt.value::numeric <> trunc(opt.value::numeric)
                                                 OR opt.value::numeric NOT BETWEEN 1 AND 1800)) THEN
            RAISE EXCEPTION 'invalid value % for option "%"', opt.value::text, opt.key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE opt.key
                          WHEN 'seed' THEN 'seed is an integer.'
                          WHEN 'rate' THEN 'rate is messages per second, 0 (as fast as Kafka takes them) to 1000000.'
                          WHEN 'quote_every' THEN 'quote_every is an integer from 1 to 1000000: every n-th message of a symbol is a quote, the others trades.'
                          WHEN 'max_messages' THEN 'max_messages is an integer >= 0 (0: no limit).'
                          WHEN 'calls_per_minute' THEN 'calls_per_minute is an integer from 1 to 1800 (Finnhub free tier: 60; never more than 30 a second).'
                          ELSE 'skip_unchanged is true or false.' END;
        END IF;
    END LOOP;

    IF p_kind = 'finnhub_quotes' THEN
        calls_per_minute := coalesce((p_options->>'calls_per_minute')::numeric, 60);
        needed := ceil(cardinality(p_symbols) * 60000.0 / p_poll_interval_ms);
        IF needed > calls_per_minute THEN
            RAISE EXCEPTION 'polling % symbols every % ms needs % calls a minute, above the budget of %',
                cardinality(p_symbols), p_poll_interval_ms, needed, calls_per_minute
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Raise poll_interval_ms to at least %s, or calls_per_minute if your Finnhub plan allows (free tier: 60).',
                                    ceil(cardinality(p_symbols) * 60000.0 / calls_per_minute));
        END IF;
    END IF;
END;
$$;

CREATE FUNCTION stocks_stream._source(p_name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
DECLARE
    s stocks_stream.sources;
BEGIN
    SELECT * INTO s FROM stocks_stream.sources WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source % does not exist', coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM stocks_stream.sources lists the sources.';
    END IF;
    RETURN s;
END;
$$;

CREATE FUNCTION stocks_stream.create_source(
    name text, kind text, symbols text[],
    topic text DEFAULT 'market',
    poll_interval_ms integer DEFAULT 60000,
    options jsonb DEFAULT '{}')
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources;
BEGIN
    PERFORM stocks_stream._check_source_args(name, kind, symbols, topic, poll_interval_ms, options);
    IF EXISTS (SELECT 1 FROM stocks_stream.sources so WHERE so.name = create_source.name) THEN
        RAISE EXCEPTION 'source "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use alter_source() to change it, or drop_source() first.';
    END IF;
    INSERT INTO stocks_stream.sources (name, kind, symbols, topic, poll_interval_ms, options)
    VALUES (name, kind, symbols, topic, poll_interval_ms, options)
    RETURNING * INTO s;
    RETURN s;
END;
$$;
COMMENT ON FUNCTION stocks_stream.create_source IS
    'Create a (stopped) ingest source. Options: simulator {seed, rate, quote_every, max_messages}; finnhub_quotes {calls_per_minute, skip_unchanged}; finnhub_trades none.';

CREATE FUNCTION stocks_stream.alter_source(
    name text, symbols text[] DEFAULT NULL, topic text DEFAULT NULL,
    poll_interval_ms integer DEFAULT NULL, options jsonb DEFAULT NULL)
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    s.symbols := coalesce(symbols, s.symbols);
    s.topic := coalesce(topic, s.topic);
    s.poll_interval_ms := coalesce(poll_interval_ms, s.poll_interval_ms);
    s.options := coalesce(options, s.options);
    PERFORM stocks_stream._check_source_args(s.name, s.kind, s.symbols, s.topic, s.poll_interval_ms, s.options);
    UPDATE stocks_stream.sources so
       SET symbols = s.symbols, topic = s.topic, poll_interval_ms = s.poll_interval_ms,
           options = s.options, generation = so.generation + 1, updated_at = now()
     WHERE so.source_id = s.source_id
    RETURNING * INTO s;
    RETURN s;
END;
$$;
COMMENT ON FUNCTION stocks_stream.alter_source IS
    'Change a source (NULL keeps a setting; options are replaced as a whole); a running worker restarts with the new settings.';

CREATE FUNCTION stocks_stream.start_source(name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    UPDATE stocks_stream.sources SET running = true, updated_at = now()
     WHERE source_id = s.source_id RETURNING * INTO s;
    RETURN s;
END;
$$;

CREATE FUNCTION stocks_stream.stop_source(name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    UPDATE stocks_stream.sources SET running = false, updated_at = now()
     WHERE source_id = s.source_id RETURNING * INTO s;
    RETURN s;
END;
$$;

CREATE FUNCTION stocks_stream.drop_source(name text)
RETURNS void LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    DELETE FROM stocks_stream.sources WHERE source_id = s.source_id;
END;
$$;

CREATE VIEW stocks_stream.source_status AS
    SELECT w.owner AS source, s.kind, w.pid, w.state, w.detail,
           w.counters[1] AS messages_produced, w.counters[2] AS delivery_failures,
           w.counters[3] AS api_calls, w.counters[4] AS rate_limited_429,
           w.counters[5] AS zero_quotes_skipped, w.counters[6] AS unchanged_quotes_skipped,
           w.counters[7] AS reconnects, w.started_at,
           w.last_activity AS last_message_at, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('ingest') w
      JOIN stocks_stream.sources s ON s.source_id = w.owner_id AND s.name = w.owner
     ORDER BY w.owner;
COMMENT ON VIEW stocks_stream.source_status IS
    'One row per running ingest source: state, messages produced (acknowledged by Kafka), delivery failures, Finnhub API calls, 429s, zero and unchanged quotes skipped, WebSocket reconnects, last message time, last error.';

-- Only the owner (a superuser) manages pipelines and sources and reads their status.
REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Silver: typed, validated, deduplicated records loaded from bronze
-- ---------------------------------------------------------------------------
-- Prices and volumes are double precision: Finnhub sends binary floating
-- point numbers, the loader stores exactly the doubles it received (no
-- rounding to a scale), and aggregates over millions of rows are far
-- cheaper than numeric.  Times are timestamptz in UTC.

ALTER TABLE stocks_stream.manifest
    ADD COLUMN loaded_at timestamptz,
    ADD COLUMN load_error text,
    ADD COLUMN load_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_load_attempt timestamptz;
CREATE INDEX manifest_unloaded_idx ON stocks_stream.manifest (object_id) WHERE loaded_at IS NULL;
COMMENT ON COLUMN stocks_stream.manifest.loaded_at IS 'When load_bronze() loaded the object into silver; NULL while pending.';
COMMENT ON COLUMN stocks_stream.manifest.load_error IS 'Why the last load attempt failed (S3 error, corrupt gzip, ...); retried by the next load_bronze().';

CREATE TABLE stocks_stream.quotes (
    symbol           text NOT NULL,
    quote_time       timestamptz NOT NULL,
    price            double precision NOT NULL CHECK (price > 0),
    change           double precision,
    change_pct       double precision,
    day_high         double precision NOT NULL,
    day_low          double precision NOT NULL,
    day_open         double precision NOT NULL,
    prev_close       double precision NOT NULL,
    fetched_at       timestamptz,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset, quote_time),
    CHECK (day_high >= day_low)
) PARTITION BY RANGE (quote_time);
CREATE INDEX quotes_symbol_time_idx ON stocks_stream.quotes (symbol, quote_time);
COMMENT ON TABLE stocks_stream.quotes IS 'Silver: one row per Finnhub quote loaded from bronze, partitioned by day of quote_time. Unique on its Kafka source (with quote_time, the partition key).';
COMMENT ON COLUMN stocks_stream.quotes.symbol IS 'Ticker symbol as Finnhub writes it.';
COMMENT ON COLUMN stocks_stream.quotes.quote_time IS 'Finnhub t: time of the quote (UTC).';
COMMENT ON COLUMN stocks_stream.quotes.price IS 'Finnhub c: current price.';
COMMENT ON COLUMN stocks_stream.quotes.change IS 'Finnhub d: change from the previous close.';
COMMENT ON COLUMN stocks_stream.quotes.change_pct IS 'Finnhub dp: percent change from the previous close.';
COMMENT ON COLUMN stocks_stream.quotes.day_high IS 'Finnhub h: high of the day.';
COMMENT ON COLUMN stocks_stream.quotes.day_low IS 'Finnhub l: low of the day.';
COMMENT ON COLUMN stocks_stream.quotes.day_open IS 'Finnhub o: open of the day.';
COMMENT ON COLUMN stocks_stream.quotes.prev_close IS 'Finnhub pc: previous close.';
COMMENT ON COLUMN stocks_stream.quotes.fetched_at IS 'When the ingest side fetched the quote (fetched_time).';
COMMENT ON COLUMN stocks_stream.quotes.source_topic IS 'Kafka topic the record came from.';
COMMENT ON COLUMN stocks_stream.quotes.source_partition IS 'Kafka partition the record came from.';
COMMENT ON COLUMN stocks_stream.quotes.source_offset IS 'Kafka offset of the record.';
COMMENT ON COLUMN stocks_stream.quotes.loaded_at IS 'When load_bronze() loaded the row.';

CREATE TABLE stocks_stream.trades (
    symbol           text NOT NULL,
    trade_time       timestamptz NOT NULL,
    price            double precision NOT NULL CHECK (price > 0),
    volume           double precision NOT NULL CHECK (volume >= 0),
    conditions       text[] NOT NULL DEFAULT '{}',
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset, trade_time)
) PARTITION BY RANGE (trade_time);
CREATE INDEX trades_symbol_time_idx ON stocks_stream.trades (symbol, trade_time);
COMMENT ON TABLE stocks_stream.trades IS 'Silver: one row per trade loaded from bronze, partitioned by day of trade_time. Unique on its Kafka source (with trade_time, the partition key).';
COMMENT ON COLUMN stocks_stream.trades.symbol IS 'Ticker symbol (Finnhub s).';
COMMENT ON COLUMN stocks_stream.trades.trade_time IS 'Finnhub t: time of the trade, millisecond precision (UTC).';
COMMENT ON COLUMN stocks_stream.trades.price IS 'Finnhub p: trade price.';
COMMENT ON COLUMN stocks_stream.trades.volume IS 'Finnhub v: traded volume (fractional for crypto).';
COMMENT ON COLUMN stocks_stream.trades.conditions IS 'Finnhub c: trade condition codes.';
COMMENT ON COLUMN stocks_stream.trades.source_topic IS 'Kafka topic the record came from.';
COMMENT ON COLUMN stocks_stream.trades.source_partition IS 'Kafka partition the record came from.';
COMMENT ON COLUMN stocks_stream.trades.source_offset IS 'Kafka offset of the record.';
COMMENT ON COLUMN stocks_stream.trades.loaded_at IS 'When load_bronze() loaded the row.';

CREATE TABLE stocks_stream.quarantine (
    quarantine_id  bigserial PRIMARY KEY,
    bucket         text NOT NULL,
    object_key     text NOT NULL,
    line_number    bigint NOT NULL,
    raw            bytea NOT NULL,
    reason         text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, object_key, line_number)
);
COMMENT ON TABLE stocks_stream.quarantine IS 'Bronze lines that failed validation, kept byte for byte with the reason; never loaded into silver.';
COMMENT ON COLUMN stocks_stream.quarantine.bucket IS 'S3 bucket of the object.';
COMMENT ON COLUMN stocks_stream.quarantine.object_key IS 'S3 key of the object holding the line.';
COMMENT ON COLUMN stocks_stream.quarantine.line_number IS 'Line number in the object, from 0 (offset = first_offset + line_number).';
COMMENT ON COLUMN stocks_stream.quarantine.raw IS 'The line exactly as archived.';
COMMENT ON COLUMN stocks_stream.quarantine.reason IS 'Why the line was refused.';
COMMENT ON COLUMN stocks_stream.quarantine.quarantined_at IS 'When it was quarantined.';

CREATE FUNCTION stocks_stream.ensure_day_partition(day date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'day must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- serialise concurrent loaders creating the same partition
    PERFORM pg_advisory_xact_lock(hashtext('stocks_stream.ensure_day_partition'));
    FOREACH t IN ARRAY ARRAY['quotes', 'trades'] LOOP
        IF to_regclass(format('stocks_stream.%I', t || '_' || to_char(day, 'YYYYMMDD'))) IS NULL THEN
            EXECUTE format('CREATE TABLE stocks_stream.%I PARTITION OF stocks_stream.%I FOR VALUES FROM (%L) TO (%L)',
                           t || '_' || to_char(day, 'YYYYMMDD'), t,
                           day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION stocks_stream.ensure_day_partition IS 'Create the quotes and trades partitions of one UTC day if missing (load_bronze() calls it).';

CREATE FUNCTION stocks_stream.drop_silver_before(day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'day must not be NULL' USING ERRCODE = 'null_value_not_allowed',
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

CREATE FUNCTION stocks_stream.load_bronze(
    pipeline text DEFAULT NULL, max_objects integer DEFAULT NULL,
    OUT objects_loaded bigint, OUT rows_loaded bigint, OUT rows_duplicate bigint,
    OUT rows_quarantined bigint, OUT objects_failed bigint)
AS 'MODULE_PATHNAME', 'ss_load_bronze' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION stocks_stream.load_bronze IS
    'Load archived objects not loaded yet (of one pipeline, or all) into silver quotes and trades; bad lines go to quarantine. Safe to call concurrently and repeatedly.';

CREATE FUNCTION stocks_stream.check_bronze_line(line bytea, OUT kind text, OUT reason text)
AS 'MODULE_PATHNAME', 'ss_check_bronze_line' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION stocks_stream.check_bronze_line IS
    'How load_bronze() would take one bronze line: kind quote, trade or invalid, with the quarantine reason.';

REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Gold: candles and daily summaries, refreshed incrementally
-- ---------------------------------------------------------------------------

CREATE TABLE stocks_stream.gold_dirty (
    symbol text NOT NULL,
    minute timestamptz NOT NULL,
    PRIMARY KEY (symbol, minute)
);
COMMENT ON TABLE stocks_stream.gold_dirty IS
    'Minutes of silver data loaded since the last refresh_gold(): the watermark of the incremental refresh. load_bronze() adds to it in the same transaction as the rows; refresh_gold() consumes it.';

CREATE TABLE stocks_stream.candles (
    symbol       text NOT NULL,
    interval     text NOT NULL CHECK (interval IN ('1m', '5m', '1h', '1d')),
    bucket_start timestamptz NOT NULL,
    open         double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    close        double precision NOT NULL,
    volume       double precision,
    vwap         double precision,
    sample_count integer NOT NULL,
    built_from   text NOT NULL CHECK (built_from IN ('trades', 'quotes')),
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, bucket_start)
);
CREATE INDEX candles_interval_start_idx ON stocks_stream.candles (interval, bucket_start);
COMMENT ON TABLE stocks_stream.candles IS
    'Gold: OHLC candles per symbol and interval (1m, 5m, 1h, 1d, UTC buckets), from trades where the bucket has trades (volume and VWAP real), otherwise from quote prices (volume and VWAP NULL). Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.candles.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.candles.interval IS 'Candle width: 1m, 5m, 1h or 1d.';
COMMENT ON COLUMN stocks_stream.candles.bucket_start IS 'Start of the bucket (UTC).';
COMMENT ON COLUMN stocks_stream.candles.open IS 'Price of the earliest sample by event time.';
COMMENT ON COLUMN stocks_stream.candles.high IS 'Highest price in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.low IS 'Lowest price in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.close IS 'Price of the latest sample by event time.';
COMMENT ON COLUMN stocks_stream.candles.volume IS 'Traded volume; NULL for a candle built from quotes.';
COMMENT ON COLUMN stocks_stream.candles.vwap IS 'Volume-weighted average price; NULL when built from quotes or with no volume.';
COMMENT ON COLUMN stocks_stream.candles.sample_count IS 'Trades (or quotes) in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.built_from IS 'trades or quotes.';
COMMENT ON COLUMN stocks_stream.candles.refreshed_at IS 'When refresh_gold() last computed the candle.';

CREATE TABLE stocks_stream.daily_summary (
    symbol       text NOT NULL,
    day          date NOT NULL,
    open         double precision NOT NULL,
    close        double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    change       double precision NOT NULL,
    change_pct   double precision,
    volatility   double precision,
    volume       double precision,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, day)
);
CREATE INDEX daily_summary_day_idx ON stocks_stream.daily_summary (day);
COMMENT ON TABLE stocks_stream.daily_summary IS 'Gold: one row per symbol and UTC day, from the day''s candles. Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.daily_summary.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.daily_summary.day IS 'UTC day.';
COMMENT ON COLUMN stocks_stream.daily_summary.open IS 'First price of the day by event time.';
COMMENT ON COLUMN stocks_stream.daily_summary.close IS 'Last price of the day by event time.';
COMMENT ON COLUMN stocks_stream.daily_summary.high IS 'Highest price of the day.';
COMMENT ON COLUMN stocks_stream.daily_summary.low IS 'Lowest price of the day.';
COMMENT ON COLUMN stocks_stream.daily_summary.change IS 'close - open.';
COMMENT ON COLUMN stocks_stream.daily_summary.change_pct IS '(close - open) / open * 100.';
COMMENT ON COLUMN stocks_stream.daily_summary.volatility IS 'Sample standard deviation of the day''s 1-minute log returns (close to close); NULL with fewer than two returns.';
COMMENT ON COLUMN stocks_stream.daily_summary.volume IS 'Traded volume of the day; NULL when the day had only quotes.';
COMMENT ON COLUMN stocks_stream.daily_summary.refreshed_at IS 'When refresh_gold() last computed the row.';

CREATE FUNCTION stocks_stream._bucket(iv text, t timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE iv
        WHEN '1m' THEN date_bin('1 minute', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '5m' THEN date_bin('5 minutes', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '1h' THEN date_bin('1 hour', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '1d' THEN date_bin('1 day', t, timestamptz '2000-01-01 00:00:00+00')
    END
$$;

CREATE FUNCTION stocks_stream._width(iv text)
RETURNS interval LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE iv WHEN '1m' THEN interval '1 minute' WHEN '5m' THEN interval '5 minutes'
                   WHEN '1h' THEN interval '1 hour' WHEN '1d' THEN interval '1 day' END
$$;

CREATE FUNCTION stocks_stream.refresh_gold()
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    updated bigint := 0;
    n bigint;
BEGIN
    -- take the dirty minutes; concurrent refreshes take disjoint sets
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_dirty (symbol text, minute timestamptz) ON COMMIT DROP;
    TRUNCATE pg_temp.ss_dirty;
    WITH taken AS (
        DELETE FROM stocks_stream.gold_dirty d
         WHERE (d.symbol, d.minute) IN (SELECT symbol, minute FROM stocks_stream.gold_dirty
                                          FOR UPDATE SKIP LOCKED)
        RETURNING d.symbol, d.minute)
    INSERT INTO pg_temp.ss_dirty SELECT symbol, minute FROM taken;

    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_buckets (symbol text, iv text, bucket_start timestamptz) ON COMMIT DROP;
    TRUNCATE pg_temp.ss_buckets;
    INSERT INTO pg_temp.ss_buckets
    SELECT DISTINCT d.symbol, iv, stocks_stream._bucket(iv, d.minute)
      FROM pg_temp.ss_dirty d, unnest(ARRAY['1m', '5m', '1h', '1d']) iv;

    -- recompute every touched bucket from silver, open/close by event time
    INSERT INTO stocks_stream.candles AS c
        (symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count, built_from)
    SELECT b.symbol, b.iv, b.bucket_start, x.open, x.high, x.low, x.close, x.volume, x.vwap, x.n, x.built_from
      FROM pg_temp.ss_buckets b
      CROSS JOIN LATERAL (
          SELECT (array_agg(t.price ORDER BY t.trade_time, t.source_partition, t.source_offset))[1] AS open,
                 max(t.price) AS high, min(t.price) AS low,
                 (array_agg(t.price ORDER BY t.trade_time DESC, t.source_partition DESC, t.source_offset DESC))[1] AS close,
                 sum(t.volume) AS volume,
                 sum(t.price * t.volume) / nullif(sum(t.volume), 0) AS vwap,
                 count(*)::integer AS n, 'trades'::text AS built_from
            FROM stocks_stream.trades t
           WHERE t.symbol = b.symbol AND t.trade_time >= b.bucket_start
             AND t.trade_time < b.bucket_start + stocks_stream._width(b.iv)
          HAVING count(*) > 0
          UNION ALL
          SELECT (array_agg(q.price ORDER BY q.quote_time, q.source_partition, q.source_offset))[1],
                 max(q.price), min(q.price),
                 (array_agg(q.price ORDER BY q.quote_time DESC, q.source_partition DESC, q.source_offset DESC))[1],
                 NULL, NULL, count(*)::integer, 'quotes'
            FROM stocks_stream.quotes q
           WHERE q.symbol = b.symbol AND q.quote_time >= b.bucket_start
             AND q.quote_time < b.bucket_start + stocks_stream._width(b.iv)
             AND NOT EXISTS (SELECT 1 FROM stocks_stream.trades t
                              WHERE t.symbol = b.symbol AND t.trade_time >= b.bucket_start
                                AND t.trade_time < b.bucket_start + stocks_stream._width(b.iv))
          HAVING count(*) > 0
      ) x
    ON CONFLICT (symbol, interval, bucket_start) DO UPDATE
       SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
           volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, sample_count = EXCLUDED.sample_count,
           built_from = EXCLUDED.built_from, refreshed_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    updated := updated + n;

    -- daily summaries of the touched days
    INSERT INTO stocks_stream.daily_summary AS s
        (symbol, day, open, close, high, low, change, change_pct, volatility, volume)
    SELECT d.symbol, (d.bucket_start AT TIME ZONE 'UTC')::date, d.open, d.close, d.high, d.low,
           d.close - d.open, (d.close - d.open) / nullif(d.open, 0) * 100,
           (SELECT stddev_samp(r) FROM (
                SELECT ln(m.close / lag(m.close) OVER (ORDER BY m.bucket_start)) AS r
                  FROM stocks_stream.candles m
                 WHERE m.symbol = d.symbol AND m.interval = '1m'
                   AND m.bucket_start >= d.bucket_start AND m.bucket_start < d.bucket_start + interval '1 day') rr),
           d.volume
      FROM stocks_stream.candles d
      JOIN pg_temp.ss_buckets b ON b.symbol = d.symbol AND b.iv = '1d' AND b.bucket_start = d.bucket_start
     WHERE d.interval = '1d'
    ON CONFLICT (symbol, day) DO UPDATE
       SET open = EXCLUDED.open, close = EXCLUDED.close, high = EXCLUDED.high, low = EXCLUDED.low,
           change = EXCLUDED.change, change_pct = EXCLUDED.change_pct, volatility = EXCLUDED.volatility,
           volume = EXCLUDED.volume, refreshed_at = now();
    RETURN updated;
END;
$$;
COMMENT ON FUNCTION stocks_stream.refresh_gold IS
    'Recompute the candles (1m, 5m, 1h, 1d) and daily summaries touched by rows loaded since the last refresh; idempotent; returns how many candles it updated.';

REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;

CREATE FUNCTION stocks_stream.load_bronze_prefix(
    bucket text, prefix text,
    OUT objects_loaded bigint, OUT rows_loaded bigint, OUT rows_duplicate bigint,
    OUT rows_quarantined bigint, OUT objects_failed bigint)
AS 'MODULE_PATHNAME', 'ss_load_bronze_prefix' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION stocks_stream.load_bronze_prefix IS
    'Backfill silver from an S3 LIST of bucket/prefix, with or without manifest rows: archive objects keep their Kafka source; objects of the old Python pipeline (<symbol>/<unix_ts>.json, one quote each) are their own source. Found objects join the manifest, so a rerun loads nothing twice.';
REVOKE ALL ON FUNCTION stocks_stream.load_bronze_prefix(text, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- The api schema served by PostgREST: read-only views over gold and silver
-- ---------------------------------------------------------------------------
-- Roles (cluster-wide, so created only when missing):
--   stocks_stream_api_owner      owns the api views; may read what they show
--   stocks_stream_anon           PostgREST's anonymous role: USAGE on api and
--                                SELECT on its views, nothing else
--   stocks_stream_authenticator  PostgREST logs in as it (set its password)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_api_owner') THEN
        CREATE ROLE stocks_stream_api_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_anon') THEN
        CREATE ROLE stocks_stream_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_authenticator') THEN
        CREATE ROLE stocks_stream_authenticator LOGIN NOINHERIT;
    END IF;
END;
$$;
GRANT stocks_stream_anon TO stocks_stream_authenticator;
ALTER ROLE stocks_stream_anon SET statement_timeout = '5s';

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS 'stocks_stream market data: gold candles and daily summaries, latest quotes, top movers, pipeline health. Read-only.';
GRANT USAGE ON SCHEMA stocks_stream TO stocks_stream_api_owner;
GRANT SELECT ON stocks_stream.candles, stocks_stream.daily_summary, stocks_stream.quotes,
    stocks_stream.pipelines, stocks_stream.sources, stocks_stream.manifest TO stocks_stream_api_owner;
GRANT EXECUTE ON FUNCTION stocks_stream.worker_status_internal(text) TO stocks_stream_api_owner;

-- Worker status for api.pipeline_health without the error texts.  Functions
-- in a view run with the caller's rights, so this one is SECURITY DEFINER
-- (owned by the api owner); the anonymous role may execute it but cannot
-- reach anything else in the schema.
CREATE FUNCTION stocks_stream.api_worker_status(kind text,
    OUT owner text, OUT owner_id integer, OUT state text, OUT messages bigint,
    OUT lag bigint, OUT last_activity timestamptz, OUT last_error_at timestamptz)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT owner, owner_id, state, counters[1], CASE WHEN kind = 'archive' THEN counters[4] END,
           last_activity, last_error_at
      FROM stocks_stream.worker_status_internal(kind)
$$;
ALTER FUNCTION stocks_stream.api_worker_status(text) OWNER TO stocks_stream_api_owner;

CREATE VIEW api.candles AS
    SELECT symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count
      FROM stocks_stream.candles;
COMMENT ON VIEW api.candles IS 'OHLC candles per symbol and interval. Filter on symbol, interval and bucket_start (indexed), e.g. ?symbol=eq.AAPL&interval=eq.1m&bucket_start=gte.2025-11-24&order=bucket_start';
COMMENT ON COLUMN api.candles.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.candles.interval IS 'Candle width: 1m, 5m, 1h or 1d.';
COMMENT ON COLUMN api.candles.bucket_start IS 'Start of the candle (UTC).';
COMMENT ON COLUMN api.candles.open IS 'First price in the bucket by event time.';
COMMENT ON COLUMN api.candles.high IS 'Highest price.';
COMMENT ON COLUMN api.candles.low IS 'Lowest price.';
COMMENT ON COLUMN api.candles.close IS 'Last price by event time.';
COMMENT ON COLUMN api.candles.volume IS 'Traded volume; null for candles built from quotes.';
COMMENT ON COLUMN api.candles.vwap IS 'Volume-weighted average price; null without trades.';
COMMENT ON COLUMN api.candles.sample_count IS 'Trades (or quotes) in the bucket.';

CREATE VIEW api.daily_summary AS
    SELECT symbol, day, open, close, high, low, change, change_pct, volatility, volume
      FROM stocks_stream.daily_summary;
COMMENT ON VIEW api.daily_summary IS 'One row per symbol and UTC day. Filter on symbol and day (indexed).';
COMMENT ON COLUMN api.daily_summary.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.daily_summary.day IS 'UTC day.';
COMMENT ON COLUMN api.daily_summary.open IS 'First price of the day.';
COMMENT ON COLUMN api.daily_summary.close IS 'Last price of the day.';
COMMENT ON COLUMN api.daily_summary.high IS 'Highest price of the day.';
COMMENT ON COLUMN api.daily_summary.low IS 'Lowest price of the day.';
COMMENT ON COLUMN api.daily_summary.change IS 'close - open.';
COMMENT ON COLUMN api.daily_summary.change_pct IS 'Change in percent of the open.';
COMMENT ON COLUMN api.daily_summary.volatility IS 'Standard deviation of the day''s 1-minute log returns.';
COMMENT ON COLUMN api.daily_summary.volume IS 'Traded volume of the day.';

CREATE VIEW api.top_movers AS
    SELECT symbol, day, close, change, change_pct, volume,
           rank() OVER (ORDER BY change_pct DESC NULLS LAST) AS gain_rank,
           rank() OVER (ORDER BY change_pct ASC NULLS LAST) AS loss_rank
      FROM stocks_stream.daily_summary
     WHERE day = (SELECT max(day) FROM stocks_stream.daily_summary);
COMMENT ON VIEW api.top_movers IS 'The symbols of the latest day with data, ranked by percent change: ?order=gain_rank&limit=5 for gainers, ?order=loss_rank&limit=5 for losers.';
COMMENT ON COLUMN api.top_movers.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.top_movers.day IS 'The latest UTC day with data.';
COMMENT ON COLUMN api.top_movers.close IS 'Last price of the day.';
COMMENT ON COLUMN api.top_movers.change IS 'close - open.';
COMMENT ON COLUMN api.top_movers.change_pct IS 'Change in percent of the open.';
COMMENT ON COLUMN api.top_movers.volume IS 'Traded volume of the day.';
COMMENT ON COLUMN api.top_movers.gain_rank IS '1 for the biggest gainer.';
COMMENT ON COLUMN api.top_movers.loss_rank IS '1 for the biggest loser.';

CREATE VIEW api.latest_quotes AS
    SELECT DISTINCT ON (symbol) symbol, quote_time, price, change, change_pct, day_high, day_low,
           day_open, prev_close
      FROM stocks_stream.quotes
     ORDER BY symbol, quote_time DESC;
COMMENT ON VIEW api.latest_quotes IS 'The latest quote of each symbol. A filter on symbol is applied before the DISTINCT ON and uses the (symbol, quote_time) index.';
COMMENT ON COLUMN api.latest_quotes.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.latest_quotes.quote_time IS 'Time of the quote (UTC).';
COMMENT ON COLUMN api.latest_quotes.price IS 'Current price.';
COMMENT ON COLUMN api.latest_quotes.change IS 'Change from the previous close.';
COMMENT ON COLUMN api.latest_quotes.change_pct IS 'Percent change from the previous close.';
COMMENT ON COLUMN api.latest_quotes.day_high IS 'High of the day.';
COMMENT ON COLUMN api.latest_quotes.day_low IS 'Low of the day.';
COMMENT ON COLUMN api.latest_quotes.day_open IS 'Open of the day.';
COMMENT ON COLUMN api.latest_quotes.prev_close IS 'Previous close.';

CREATE VIEW api.pipeline_health AS
    SELECT 'archive'::text AS kind, p.name, p.running, w.state, w.messages,
           w.lag AS consumer_lag, w.last_activity, w.last_error_at,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.loaded_at IS NULL) AS objects_pending_load,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.load_error IS NOT NULL) AS objects_failed_load
      FROM stocks_stream.pipelines p
      LEFT JOIN stocks_stream.api_worker_status('archive') w ON w.owner_id = p.pipeline_id AND w.owner = p.name
    UNION ALL
    SELECT 'source', s.name, s.running, w.state, w.messages, NULL, w.last_activity, w.last_error_at, NULL, NULL
      FROM stocks_stream.sources s
      LEFT JOIN stocks_stream.api_worker_status('ingest') w ON w.owner_id = s.source_id AND w.owner = s.name;
COMMENT ON VIEW api.pipeline_health IS 'Archive pipelines (a row per worker) and ingest sources: running or not, worker state, messages handled, consumer lag, last activity and error time, objects waiting for or failing load. Error texts and settings are not exposed.';
COMMENT ON COLUMN api.pipeline_health.kind IS 'archive (pipeline) or source.';
COMMENT ON COLUMN api.pipeline_health.name IS 'Pipeline or source name.';
COMMENT ON COLUMN api.pipeline_health.running IS 'Whether it is meant to run.';
COMMENT ON COLUMN api.pipeline_health.state IS 'Worker state; null when no worker runs.';
COMMENT ON COLUMN api.pipeline_health.messages IS 'Messages archived (pipeline) or produced (source) by the current worker.';
COMMENT ON COLUMN api.pipeline_health.consumer_lag IS 'Archive pipelines: messages in Kafka not archived yet, from the high watermarks of the worker''s last fetches (one row per worker).';
COMMENT ON COLUMN api.pipeline_health.last_activity IS 'Last flush or message.';
COMMENT ON COLUMN api.pipeline_health.last_error_at IS 'When the worker last hit an error.';
COMMENT ON COLUMN api.pipeline_health.objects_pending_load IS 'Archived objects not loaded into silver yet.';
COMMENT ON COLUMN api.pipeline_health.objects_failed_load IS 'Archived objects whose last load failed.';

ALTER VIEW api.candles OWNER TO stocks_stream_api_owner;
ALTER VIEW api.daily_summary OWNER TO stocks_stream_api_owner;
ALTER VIEW api.top_movers OWNER TO stocks_stream_api_owner;
ALTER VIEW api.latest_quotes OWNER TO stocks_stream_api_owner;
ALTER VIEW api.pipeline_health OWNER TO stocks_stream_api_owner;
GRANT USAGE ON SCHEMA api TO stocks_stream_anon;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO stocks_stream_anon;

REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stocks_stream.api_worker_status(text) TO stocks_stream_anon;
NOTIFY pgrst, 'reload schema';
