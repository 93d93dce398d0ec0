-- stocks_stream: ingest sources (Finnhub quotes and trades, the simulator
-- -> Kafka): create, alter, start, stop, drop, and their argument checks.

-- ---------------------------------------------------------------------------
-- One rule for a market symbol (symbol.c), used by the source API, the
-- simulator, the bronze loader and the keys of the old Python pipeline
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.symbol_is_valid(symbol text) RETURNS boolean
AS 'MODULE_PATHNAME', 'ss_symbol_is_valid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.symbol_is_valid IS
    'Whether a text is a market symbol as stocks_stream takes it: 1 to 32 upper-case letters, digits and . : ^ _ / -, starting with a letter or digit (AAPL, BRK.B, BINANCE:BTCUSDT).';

-- ---------------------------------------------------------------------------
-- Source API
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream._check_source_args(
    p_name text, p_kind text, p_symbols text[], p_topic text,
    p_poll_interval_ms integer, p_options jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    allowed text[];
    opt record;
    bad text;
    calls_per_minute numeric;
    needed numeric;
BEGIN
    PERFORM stocks_stream._check_name('source', p_name);
    IF p_kind IS NULL OR p_kind NOT IN ('simulator', 'finnhub_quotes', 'finnhub_trades') THEN
        RAISE EXCEPTION 'stocks_stream: unknown source kind %', coalesce('"' || p_kind || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use simulator, finnhub_quotes or finnhub_trades.';
    END IF;
    IF p_symbols IS NULL OR cardinality(p_symbols) = 0 THEN
        RAISE EXCEPTION 'stocks_stream: a source needs at least one symbol'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass symbols as an array, e.g. ARRAY[''AAPL'', ''MSFT''].';
    END IF;
    IF cardinality(p_symbols) > 500 THEN
        RAISE EXCEPTION 'stocks_stream: a source takes at most 500 symbols, got %', cardinality(p_symbols)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s INTO bad FROM unnest(p_symbols) s
     WHERE s IS NULL OR NOT stocks_stream.symbol_is_valid(s) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'stocks_stream: invalid symbol %', coalesce('"' || bad || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Symbols are 1 to 32 upper-case letters, digits and . : ^ _ / -, as Finnhub writes them (AAPL, BRK.B, BINANCE:BTCUSDT).';
    END IF;
    SELECT s INTO bad FROM unnest(p_symbols) s GROUP BY s HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'stocks_stream: symbol "%" is listed twice', bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM stocks_stream._check_topic(p_topic);
    IF p_poll_interval_ms IS NULL OR p_poll_interval_ms NOT BETWEEN 1000 AND 86400000 THEN
        RAISE EXCEPTION 'stocks_stream: poll_interval_ms must be between 1000 and 86400000 (one day), got %', coalesce(p_poll_interval_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_options IS NULL OR jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'stocks_stream: options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''{}'' for none.';
    END IF;

    allowed := CASE p_kind
        WHEN 'simulator' THEN ARRAY['seed', 'rate', 'quote_every', 'max_messages']
        WHEN 'finnhub_quotes' THEN ARRAY['calls_per_minute', 'skip_unchanged']
        ELSE ARRAY[]::text[] END;
    FOR opt IN SELECT key, value FROM jsonb_each(p_options) LOOP
        IF NOT opt.key = ANY (allowed) THEN
            RAISE EXCEPTION 'stocks_stream: unknown option "%" for a % source', opt.key, p_kind
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
            RAISE EXCEPTION 'stocks_stream: invalid value % for option "%"', opt.value::text, opt.key
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
            RAISE EXCEPTION 'stocks_stream: polling % symbols every % ms needs % calls a minute, above the budget of %',
                cardinality(p_symbols), p_poll_interval_ms, needed, calls_per_minute
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Raise poll_interval_ms to at least %s, or calls_per_minute if your Finnhub plan allows (free tier: 60).',
                                    ceil(cardinality(p_symbols) * 60000.0 / calls_per_minute));
        END IF;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._source(p_name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s stocks_stream.sources;
BEGIN
    SELECT * INTO s FROM stocks_stream.sources WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stocks_stream: source % does not exist', coalesce('"' || p_name || '"', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM stocks_stream.sources lists the sources.';
    END IF;
    RETURN s;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.create_source(
    name text, kind text, symbols text[],
    topic text DEFAULT 'market',
    poll_interval_ms integer DEFAULT 60000,
    options jsonb DEFAULT '{}')
RETURNS stocks_stream.sources LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources;
BEGIN
    PERFORM stocks_stream._check_source_args(name, kind, symbols, topic, poll_interval_ms, options);
    IF EXISTS (SELECT 1 FROM stocks_stream.sources so WHERE so.name = create_source.name) THEN
        RAISE EXCEPTION 'stocks_stream.create_source: source "%" already exists', name
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

CREATE OR REPLACE FUNCTION stocks_stream.alter_source(
    name text, symbols text[] DEFAULT NULL, topic text DEFAULT NULL,
    poll_interval_ms integer DEFAULT NULL, options jsonb DEFAULT NULL)
RETURNS stocks_stream.sources LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

CREATE OR REPLACE FUNCTION stocks_stream.start_source(name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    PERFORM stocks_stream._check_served_database('source', s.name);
    UPDATE stocks_stream.sources SET running = true, updated_at = now()
     WHERE source_id = s.source_id RETURNING * INTO s;
    RETURN s;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.stop_source(name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    UPDATE stocks_stream.sources SET running = false, updated_at = now()
     WHERE source_id = s.source_id RETURNING * INTO s;
    RETURN s;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.drop_source(name text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    DELETE FROM stocks_stream.sources WHERE source_id = s.source_id;
END;
$$;
