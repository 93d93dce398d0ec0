-- stocks_stream: the api schema PostgREST serves (read-only): gold candles
-- and daily summaries with numbers rounded as market data is quoted, the
-- latest quotes, top movers, the daily candlestick and volatility marts of
-- the Python pipeline's API, exchanges and symbols, candles of any interval
-- with the gaps filled (/rpc/candle_series), pipeline health and archive
-- gaps.  Owners and grants are in roles.sql.

-- ---------------------------------------------------------------------------
-- Display rounding (numeric: JSON carries exactly the digits shown)
-- ---------------------------------------------------------------------------
-- Prices (and changes, VWAP): cents at or above 1 (the US tick, SEC Rule
-- 612), four significant digits below 1 (sub-dollar stocks, crypto).
-- Percentages: two decimals.  Volumes: up to 8 decimals (fractional crypto
-- volume), trailing zeros dropped.  Volatility: up to 8 decimals.
-- Plain SQL expressions with SQL-standard bodies (RETURN): bound when
-- created, so no caller's search_path changes them, and still inlined by
-- the planner into the views (a SET search_path clause would stop that).
CREATE OR REPLACE FUNCTION stocks_stream.display_price(x double precision) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN x IS NULL THEN NULL
                WHEN x = 0 THEN 0::numeric
                WHEN abs(x) >= 1 THEN round(x::numeric, 2)
                ELSE trim_scale(round(x::numeric, 3 - floor(log(abs(x::numeric)))::integer)) END;
COMMENT ON FUNCTION stocks_stream.display_price IS 'A price, change or VWAP as quoted: cents at or above 1, four significant digits below.';

CREATE OR REPLACE FUNCTION stocks_stream.display_pct(x double precision) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN round(x::numeric, 2);
COMMENT ON FUNCTION stocks_stream.display_pct IS 'A percentage with two decimals.';

CREATE OR REPLACE FUNCTION stocks_stream.display_amount(x double precision) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN trim_scale(round(x::numeric, 8));
COMMENT ON FUNCTION stocks_stream.display_amount IS 'A volume or volatility with at most 8 decimals, trailing zeros dropped.';

-- Worker status for api.pipeline_health without the error texts.  Functions
-- in a view run with the caller's rights, so this one is SECURITY DEFINER
-- (owned by the api owner, roles.sql); the anonymous role may execute it
-- but cannot reach anything else in the schema.
CREATE OR REPLACE FUNCTION stocks_stream.api_worker_status(kind text,
    OUT owner text, OUT owner_id integer, OUT state text, OUT messages bigint,
    OUT lag bigint, OUT last_activity timestamptz, OUT last_error_at timestamptz)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT owner, owner_id, state, coalesce(messages_archived, messages_produced), lag,
           last_activity, last_error_at
      FROM stocks_stream.worker_status_internal(kind)
$$;

CREATE OR REPLACE VIEW api.candles AS
    SELECT symbol, interval, bucket_start,
           stocks_stream.display_price(open) AS open, stocks_stream.display_price(high) AS high,
           stocks_stream.display_price(low) AS low, stocks_stream.display_price(close) AS close,
           stocks_stream.display_amount(volume) AS volume, stocks_stream.display_price(vwap) AS vwap,
           sample_count
      FROM stocks_stream.candles;
COMMENT ON VIEW api.candles IS 'OHLC candles per symbol and interval (1m, 5m, 1h in UTC; 1d on the exchange day). Filter on symbol, interval and bucket_start (indexed), e.g. ?symbol=eq.AAPL&interval=eq.1m&bucket_start=gte.2025-11-24&order=bucket_start. Other intervals and gap-filled series: /rpc/candle_series.';
COMMENT ON COLUMN api.candles.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.candles.interval IS 'Candle width: 1m, 5m, 1h or 1d (the exchange day).';
COMMENT ON COLUMN api.candles.bucket_start IS 'Start of the candle (UTC); for 1d, midnight of the exchange day in its time zone.';
COMMENT ON COLUMN api.candles.open IS 'First price in the bucket by event time (cents at or above 1, 4 significant digits below).';
COMMENT ON COLUMN api.candles.high IS 'Highest price.';
COMMENT ON COLUMN api.candles.low IS 'Lowest price.';
COMMENT ON COLUMN api.candles.close IS 'Last price by event time.';
COMMENT ON COLUMN api.candles.volume IS 'Traded volume; null for candles built from quotes.';
COMMENT ON COLUMN api.candles.vwap IS 'Volume-weighted average price; null without trades.';
COMMENT ON COLUMN api.candles.sample_count IS 'Trades (or quotes) in the bucket.';

CREATE OR REPLACE VIEW api.daily_summary AS
    SELECT symbol, day,
           stocks_stream.display_price(open) AS open, stocks_stream.display_price(close) AS close,
           stocks_stream.display_price(high) AS high, stocks_stream.display_price(low) AS low,
           stocks_stream.display_price(change) AS change, stocks_stream.display_pct(change_pct) AS change_pct,
           stocks_stream.display_amount(volatility) AS volatility, stocks_stream.display_amount(volume) AS volume
      FROM stocks_stream.daily_summary;
COMMENT ON VIEW api.daily_summary IS 'One row per symbol and exchange day (New York days for US equities, UTC days for crypto; see /exchanges). Filter on symbol and day (indexed).';
COMMENT ON COLUMN api.daily_summary.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.daily_summary.day IS 'Exchange day, in the time zone of the symbol''s exchange.';
COMMENT ON COLUMN api.daily_summary.open IS 'First price of the day.';
COMMENT ON COLUMN api.daily_summary.close IS 'Last price of the day.';
COMMENT ON COLUMN api.daily_summary.high IS 'Highest price of the day.';
COMMENT ON COLUMN api.daily_summary.low IS 'Lowest price of the day.';
COMMENT ON COLUMN api.daily_summary.change IS 'close - open.';
COMMENT ON COLUMN api.daily_summary.change_pct IS 'Change in percent of the open, two decimals.';
COMMENT ON COLUMN api.daily_summary.volatility IS 'Standard deviation of the day''s 1-minute log returns.';
COMMENT ON COLUMN api.daily_summary.volume IS 'Traded volume of the day.';

CREATE OR REPLACE VIEW api.top_movers AS
    SELECT symbol, day, stocks_stream.display_price(close) AS close, stocks_stream.display_price(change) AS change,
           stocks_stream.display_pct(change_pct) AS change_pct, stocks_stream.display_amount(volume) AS volume,
           rank() OVER (ORDER BY change_pct DESC NULLS LAST) AS gain_rank,
           rank() OVER (ORDER BY change_pct ASC NULLS LAST) AS loss_rank
      FROM stocks_stream.daily_summary
     WHERE day = (SELECT max(day) FROM stocks_stream.daily_summary);
COMMENT ON VIEW api.top_movers IS 'The symbols of the latest day with data, ranked by percent change: ?order=gain_rank&limit=5 for gainers, ?order=loss_rank&limit=5 for losers.';
COMMENT ON COLUMN api.top_movers.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.top_movers.day IS 'The latest exchange day with data.';
COMMENT ON COLUMN api.top_movers.close IS 'Last price of the day.';
COMMENT ON COLUMN api.top_movers.change IS 'close - open.';
COMMENT ON COLUMN api.top_movers.change_pct IS 'Change in percent of the open, two decimals.';
COMMENT ON COLUMN api.top_movers.volume IS 'Traded volume of the day.';
COMMENT ON COLUMN api.top_movers.gain_rank IS '1 for the biggest gainer.';
COMMENT ON COLUMN api.top_movers.loss_rank IS '1 for the biggest loser.';

CREATE OR REPLACE VIEW api.latest_quotes AS
    SELECT symbol, quote_time, stocks_stream.display_price(price) AS price,
           stocks_stream.display_price(change) AS change, stocks_stream.display_pct(change_pct) AS change_pct,
           stocks_stream.display_price(day_high) AS day_high, stocks_stream.display_price(day_low) AS day_low,
           stocks_stream.display_price(day_open) AS day_open, stocks_stream.display_price(prev_close) AS prev_close
      FROM stocks_stream.latest_quotes;
COMMENT ON VIEW api.latest_quotes IS 'The latest quote of each symbol, as of the last gold refresh (one row per symbol, primary key symbol).';
COMMENT ON COLUMN api.latest_quotes.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.latest_quotes.quote_time IS 'Time of the quote (UTC).';
COMMENT ON COLUMN api.latest_quotes.price IS 'Current price.';
COMMENT ON COLUMN api.latest_quotes.change IS 'Change from the previous close.';
COMMENT ON COLUMN api.latest_quotes.change_pct IS 'Percent change from the previous close, two decimals.';
COMMENT ON COLUMN api.latest_quotes.day_high IS 'High of the day.';
COMMENT ON COLUMN api.latest_quotes.day_low IS 'Low of the day.';
COMMENT ON COLUMN api.latest_quotes.day_open IS 'Open of the day.';
COMMENT ON COLUMN api.latest_quotes.prev_close IS 'Previous close.';

-- The two marts of the Python pipeline's API (dbt builds them as
-- stocks_marts.daily_candles and stocks_marts.symbol_volatility); served
-- here from gold with the same definitions, so they never depend on dbt
-- having run.
CREATE OR REPLACE VIEW api.daily_candles AS
    SELECT symbol, day, stocks_stream.display_price(open) AS open, stocks_stream.display_price(high) AS high,
           stocks_stream.display_price(low) AS low, stocks_stream.display_price(close) AS close,
           stocks_stream.display_amount(volume) AS volume
      FROM (SELECT s.*, row_number() OVER (PARTITION BY s.symbol ORDER BY s.day DESC) AS days_back
              FROM stocks_stream.daily_summary s) r
     WHERE days_back <= 30;
COMMENT ON VIEW api.daily_candles IS 'Daily candlestick (open, high, low, close, volume) of the last 30 trading days of each symbol, on exchange days: the daily candlestick mart of the Python pipeline''s API (dbt: stocks_marts.daily_candles). Filter on symbol.';
COMMENT ON COLUMN api.daily_candles.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.daily_candles.day IS 'Exchange day.';
COMMENT ON COLUMN api.daily_candles.open IS 'First price of the day.';
COMMENT ON COLUMN api.daily_candles.high IS 'Highest price of the day.';
COMMENT ON COLUMN api.daily_candles.low IS 'Lowest price of the day.';
COMMENT ON COLUMN api.daily_candles.close IS 'Last price of the day.';
COMMENT ON COLUMN api.daily_candles.volume IS 'Traded volume (null for days with quotes only).';

CREATE OR REPLACE VIEW api.symbol_volatility AS
    WITH returns AS (
        SELECT symbol, close / nullif(lag(close) OVER (PARTITION BY symbol ORDER BY day), 0) - 1 AS daily_return
          FROM (SELECT s.symbol, s.day, s.close,
                       row_number() OVER (PARTITION BY s.symbol ORDER BY s.day DESC) AS days_back
                  FROM stocks_stream.daily_summary s) r
         WHERE days_back <= 30),
    per_symbol AS (
        SELECT symbol, count(daily_return) AS return_days, stddev_samp(daily_return) AS volatility
          FROM returns GROUP BY symbol)
    SELECT symbol, return_days, stocks_stream.display_amount(volatility) AS volatility,
           round((volatility / nullif(avg(volatility) OVER (), 0))::numeric, 4) AS relative_volatility
      FROM per_symbol;
COMMENT ON VIEW api.symbol_volatility IS 'Per-symbol volatility of daily returns over the last 30 trading days, and relative volatility (volatility / mean volatility over all symbols): the "treechart" mart of the Python pipeline''s API (dbt: stocks_marts.symbol_volatility). Relative to every symbol, so a filter on symbol applies after the average.';
COMMENT ON COLUMN api.symbol_volatility.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.symbol_volatility.return_days IS 'Daily returns the volatility is computed from.';
COMMENT ON COLUMN api.symbol_volatility.volatility IS 'Sample standard deviation of daily returns (null with fewer than two returns).';
COMMENT ON COLUMN api.symbol_volatility.relative_volatility IS 'volatility divided by the average volatility of all symbols, four decimals.';

CREATE OR REPLACE VIEW api.exchanges AS
    SELECT exchange, time_zone, symbol_pattern, priority, description
      FROM stocks_stream.exchanges;
COMMENT ON VIEW api.exchanges IS 'Exchanges and the time zone their trading day follows (daily candles and summaries use it). Edited with SQL in stocks_stream.exchanges and stocks_stream.symbol_exchanges.';
COMMENT ON COLUMN api.exchanges.exchange IS 'Exchange name.';
COMMENT ON COLUMN api.exchanges.time_zone IS 'IANA time zone of its trading day.';
COMMENT ON COLUMN api.exchanges.symbol_pattern IS 'Regular expression of the symbols it holds (empty: every symbol).';
COMMENT ON COLUMN api.exchanges.priority IS 'The matching pattern of the lowest priority wins.';
COMMENT ON COLUMN api.exchanges.description IS 'What it covers.';

-- symbols with gold data, found by a skip scan of daily_summary's primary key
CREATE OR REPLACE VIEW api.symbols AS
    WITH RECURSIVE s(symbol) AS (
        (SELECT symbol FROM stocks_stream.daily_summary ORDER BY symbol LIMIT 1)
        UNION ALL
        SELECT (SELECT d.symbol FROM stocks_stream.daily_summary d WHERE d.symbol > s.symbol
                 ORDER BY d.symbol LIMIT 1)
          FROM s WHERE s.symbol IS NOT NULL)
    SELECT s.symbol, x.exchange, x.time_zone
      FROM s
      CROSS JOIN LATERAL (
          SELECT e.exchange, e.time_zone FROM (
              SELECT e.exchange, e.time_zone, 0 AS rank, 0 AS priority
                FROM stocks_stream.symbol_exchanges m JOIN stocks_stream.exchanges e USING (exchange)
               WHERE m.symbol = s.symbol
              UNION ALL
              SELECT e.exchange, e.time_zone, 1, e.priority
                FROM stocks_stream.exchanges e WHERE s.symbol ~ e.symbol_pattern
              UNION ALL
              SELECT NULL, 'UTC', 2, 0) e
           ORDER BY e.rank, e.priority, e.exchange LIMIT 1) x
     WHERE s.symbol IS NOT NULL;
COMMENT ON VIEW api.symbols IS 'Every symbol with daily data, its exchange and the time zone of its trading day.';
COMMENT ON COLUMN api.symbols.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.symbols.exchange IS 'Its exchange (null: none matched, UTC days).';
COMMENT ON COLUMN api.symbols.time_zone IS 'Time zone of its daily candles and summaries.';

-- ---------------------------------------------------------------------------
-- /rpc/candle_series: any interval, gaps filled
-- ---------------------------------------------------------------------------
-- 1m, 5m, 1h and 1d are the stored candles; 15m and 30m are derived from the
-- 5m candles, 4h from 1h (UTC buckets like 1h), 1w from 1d (weeks from
-- Monday on the exchange day).  A derived candle equals one recomputed from
-- silver: a bucket with trades takes only its children built from trades
-- (open of the first, close of the last, max, min, summed volume and
-- count, VWAP from the children's VWAP x volume), otherwise its quote
-- children.  With fill_gaps, every bucket of the range without data is
-- returned as filled: open = high = low = close = the previous close,
-- volume 0, no VWAP; buckets before the first data the symbol has are not
-- returned.  Its row type, api.candle_point, is in pre_install.sql.
CREATE OR REPLACE FUNCTION api.candle_series(symbol text, "interval" text, start_time timestamptz, end_time timestamptz,
                                  fill_gaps boolean DEFAULT true)
RETURNS SETOF api.candle_point
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    p_symbol text := candle_series.symbol;
    iv text := candle_series."interval";
    base text;
    width interval;
    tz text := 'UTC';
    first_bucket timestamptz;
    buckets bigint;
BEGIN
    IF p_symbol IS NULL OR iv IS NULL OR start_time IS NULL OR end_time IS NULL THEN
        RAISE EXCEPTION 'stocks_stream api.candle_series: symbol, interval, start_time and end_time are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    base := CASE iv WHEN '1m' THEN '1m' WHEN '5m' THEN '5m' WHEN '15m' THEN '5m' WHEN '30m' THEN '5m'
                    WHEN '1h' THEN '1h' WHEN '4h' THEN '1h' WHEN '1d' THEN '1d' WHEN '1w' THEN '1d' END;
    IF base IS NULL THEN
        RAISE EXCEPTION 'stocks_stream api.candle_series: interval "%" is not supported', iv USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w.';
    END IF;
    IF end_time <= start_time THEN
        RAISE EXCEPTION 'stocks_stream api.candle_series: end_time must be after start_time' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    width := CASE iv WHEN '1m' THEN interval '1 minute' WHEN '5m' THEN interval '5 minutes'
                     WHEN '15m' THEN interval '15 minutes' WHEN '30m' THEN interval '30 minutes'
                     WHEN '1h' THEN interval '1 hour' WHEN '4h' THEN interval '4 hours'
                     WHEN '1d' THEN interval '1 day' WHEN '1w' THEN interval '7 days' END;
    buckets := ceil(extract(epoch FROM end_time - start_time) / extract(epoch FROM width));
    IF buckets > 10000 THEN
        RAISE EXCEPTION 'stocks_stream api.candle_series: the range holds % % buckets; at most 10000 are served', buckets, iv
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Ask for a shorter range or a wider interval.';
    END IF;
    IF iv IN ('1d', '1w') THEN
        tz := (stocks_stream.symbol_exchange(p_symbol)).time_zone;
        first_bucket := date_trunc(CASE iv WHEN '1d' THEN 'day' ELSE 'week' END, start_time AT TIME ZONE tz) AT TIME ZONE tz;
    ELSE
        first_bucket := date_bin(width, start_time, timestamptz '2000-01-01 00:00:00+00');
    END IF;

    RETURN QUERY
    WITH grid AS (
        SELECT g AS bucket_start FROM generate_series(first_bucket, end_time - interval '1 microsecond', width) g
         WHERE iv NOT IN ('1d', '1w')
        UNION ALL
        SELECT g AT TIME ZONE tz FROM generate_series(first_bucket AT TIME ZONE tz,
                                                      end_time AT TIME ZONE tz, width) g
         WHERE iv IN ('1d', '1w') AND g AT TIME ZONE tz < end_time),
    children AS (
        SELECT CASE WHEN iv IN ('1d', '1w')
                    THEN date_trunc(CASE iv WHEN '1d' THEN 'day' ELSE 'week' END, c.bucket_start AT TIME ZONE tz) AT TIME ZONE tz
                    ELSE date_bin(width, c.bucket_start, timestamptz '2000-01-01 00:00:00+00') END AS parent,
               c.*
          FROM stocks_stream.candles c
         WHERE c.symbol = p_symbol AND c.interval = base
           AND c.bucket_start >= first_bucket AND c.bucket_start < end_time),
    chosen AS (
        SELECT ch.*, bool_or(ch.built_from = 'trades') OVER (PARTITION BY ch.parent) AS has_trades
          FROM children ch),
    agg AS (
        SELECT parent,
               (array_agg(ch.open ORDER BY ch.bucket_start))[1] AS open,
               max(ch.high) AS high, min(ch.low) AS low,
               (array_agg(ch.close ORDER BY ch.bucket_start DESC))[1] AS close,
               sum(ch.volume) AS volume,
               sum(ch.vwap * ch.volume) FILTER (WHERE ch.vwap IS NOT NULL)
                   / nullif(sum(ch.volume) FILTER (WHERE ch.vwap IS NOT NULL), 0) AS vwap,
               sum(ch.sample_count) AS n
          FROM chosen ch
         WHERE ch.built_from = CASE WHEN ch.has_trades THEN 'trades' ELSE 'quotes' END
         GROUP BY parent),
    series AS (
        SELECT g.bucket_start, a.open, a.high, a.low, a.close, a.volume, a.vwap, a.n,
               count(a.close) OVER (ORDER BY g.bucket_start) AS grp
          FROM grid g LEFT JOIN agg a ON a.parent = g.bucket_start),
    carried AS (
        SELECT sr.*,
               coalesce(first_value(sr.close) OVER (PARTITION BY sr.grp ORDER BY sr.bucket_start),
                        (SELECT c.close FROM stocks_stream.candles c
                          WHERE c.symbol = p_symbol AND c.interval = base AND c.bucket_start < first_bucket
                          ORDER BY c.bucket_start DESC LIMIT 1)) AS prev_close
          FROM series sr)
    SELECT p_symbol, iv, cr.bucket_start,
           stocks_stream.display_price(coalesce(cr.open, cr.prev_close)),
           stocks_stream.display_price(coalesce(cr.high, cr.prev_close)),
           stocks_stream.display_price(coalesce(cr.low, cr.prev_close)),
           stocks_stream.display_price(coalesce(cr.close, cr.prev_close)),
           CASE WHEN cr.close IS NULL THEN 0 ELSE stocks_stream.display_amount(cr.volume) END,
           stocks_stream.display_price(cr.vwap),
           coalesce(cr.n, 0)::bigint,
           cr.close IS NULL
      FROM carried cr
     WHERE cr.close IS NOT NULL OR (fill_gaps AND cr.prev_close IS NOT NULL)
     ORDER BY cr.bucket_start;
END;
$$;
COMMENT ON FUNCTION api.candle_series(text, text, timestamptz, timestamptz, boolean) IS
    'Candles of one symbol over [start_time, end_time) at any of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w (15m/30m derived from 5m, 4h from 1h, 1w from 1d; 1d and 1w on the exchange day), with empty buckets filled (open = high = low = close = the previous close, volume 0, filled = true) unless fill_gaps is false. At most 10000 buckets. GET /rpc/candle_series?symbol=AAPL&interval=15m&start_time=2025-11-24T14:00:00Z&end_time=2025-11-24T21:00:00Z';

CREATE OR REPLACE VIEW api.archive_gaps AS
    SELECT pipeline, topic, partition, from_offset, to_offset, to_offset - from_offset + 1 AS offsets,
           reason, recorded_at
      FROM stocks_stream.archive_gaps;
COMMENT ON VIEW api.archive_gaps IS 'Offsets the archive skipped, with why and when: records deleted by retention before they were archived, a consumer group offset moved ahead, a re-created topic, a reset. Filter on pipeline, e.g. ?pipeline=eq.market_bronze&order=recorded_at.desc';
COMMENT ON COLUMN api.archive_gaps.pipeline IS 'Pipeline name.';
COMMENT ON COLUMN api.archive_gaps.topic IS 'Kafka topic, or <topic>~<topic id> for a re-created topic (as silver''s source_topic names it).';
COMMENT ON COLUMN api.archive_gaps.partition IS 'Kafka partition.';
COMMENT ON COLUMN api.archive_gaps.from_offset IS 'First offset skipped.';
COMMENT ON COLUMN api.archive_gaps.to_offset IS 'Last offset skipped (inclusive).';
COMMENT ON COLUMN api.archive_gaps.offsets IS 'Offsets skipped.';
COMMENT ON COLUMN api.archive_gaps.reason IS 'retention, group offset moved, topic re-created or reset.';
COMMENT ON COLUMN api.archive_gaps.recorded_at IS 'When the skip was recorded.';

-- ---------------------------------------------------------------------------
-- api.pipeline_health: archive pipelines (a row per worker) and ingest
-- sources, then the offsets skipped (archive_gaps) with the hint of what to
-- do when a worker holds, and the objects whose loads were given up
-- (stocks_stream.load_max_attempts).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE VIEW api.pipeline_health AS
    SELECT 'archive'::text AS kind, p.name, p.running, w.state, w.messages,
           w.lag AS consumer_lag, w.last_activity, w.last_error_at,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.loaded_at IS NULL) AS objects_pending_load,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.load_error IS NOT NULL) AS objects_failed_load,
           g.gaps, g.offsets_skipped,
           CASE w.state
               WHEN 'topic re-created' THEN
                   format('The topic was deleted and created again; nothing of the new topic is archived until SELECT stocks_stream.reset_pipeline_offsets(%L, start => ''earliest'') (or ''latest'', or a timestamp).', p.name)
               WHEN 'offset beyond end' THEN
                   format('A stored offset is beyond its partition''s end (the log was truncated); SELECT stocks_stream.reset_pipeline_offsets(%L, start => ''earliest'') (or ''latest'', or a timestamp) sets where it resumes.', p.name)
           END AS hint,
           (SELECT count(*) FROM stocks_stream.manifest m
             WHERE m.pipeline = p.name AND m.loaded_at IS NULL AND m.load_error IS NOT NULL
               AND m.load_attempts >= current_setting('stocks_stream.load_max_attempts')::int) AS objects_given_up
      FROM stocks_stream.pipelines p
      LEFT JOIN stocks_stream.api_worker_status('archive') w ON w.owner_id = p.pipeline_id AND w.owner = p.name
      LEFT JOIN LATERAL (SELECT count(*) AS gaps, coalesce(sum(ag.to_offset - ag.from_offset + 1), 0)::bigint AS offsets_skipped
                           FROM stocks_stream.archive_gaps ag WHERE ag.pipeline = p.name) g ON true
    UNION ALL
    SELECT 'source', s.name, s.running, w.state, w.messages, NULL, w.last_activity, w.last_error_at, NULL, NULL,
           NULL, NULL, NULL, NULL
      FROM stocks_stream.sources s
      LEFT JOIN stocks_stream.api_worker_status('ingest') w ON w.owner_id = s.source_id AND w.owner = s.name;
COMMENT ON VIEW api.pipeline_health IS 'Archive pipelines (a row per worker) and ingest sources: running or not, worker state, messages handled, consumer lag, last activity and error time, objects waiting for, failing or given up on load, offsets skipped (archive_gaps), and what to do when a worker holds. Error texts and settings are not exposed.';
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
COMMENT ON COLUMN api.pipeline_health.gaps IS 'Archive pipelines: ranges of offsets skipped (api.archive_gaps).';
COMMENT ON COLUMN api.pipeline_health.offsets_skipped IS 'Archive pipelines: offsets skipped in all (api.archive_gaps).';
COMMENT ON COLUMN api.pipeline_health.hint IS 'What to do when the worker holds (a re-created topic, an offset beyond its partition''s end); null otherwise.';
COMMENT ON COLUMN api.pipeline_health.objects_given_up IS
    'Archived objects whose loads failed stocks_stream.load_max_attempts times: no longer retried until stocks_stream.retry_failed_objects() is called.';

-- PostgREST reads the schema again
NOTIFY pgrst, 'reload schema';
