-- Gold, 0.2.0: exchange days, one bad bucket never stops a refresh, and a
-- latest-quote table (api.latest_quotes no longer runs a DISTINCT ON over
-- every quote).

-- ---------------------------------------------------------------------------
-- Exchanges: which time zone a symbol's trading day follows
-- ---------------------------------------------------------------------------
-- A symbol is mapped by stocks_stream.symbol_exchanges when it has a row
-- there, otherwise to the exchange of lowest priority whose symbol_pattern
-- (a regular expression) matches it.  The two built-in exchanges are US
-- equities (America/New_York, every symbol) and crypto (UTC, symbols written
-- EXCHANGE:PAIR as Finnhub writes them, e.g. BINANCE:BTCUSDT).  Built-in rows
-- are fixed (the install script makes them, so a restore could not keep an
-- edited copy); add exchanges of a lower priority number or map symbols to
-- override them.

CREATE TABLE stocks_stream.exchanges (
    exchange       text PRIMARY KEY CHECK (exchange ~ '^[A-Za-z0-9_]{1,32}$'),
    time_zone      text NOT NULL
        CHECK (pg_catalog.timezone(time_zone, timestamptz '2000-01-01 00:00:00+00') IS NOT NULL),
    symbol_pattern text NOT NULL CHECK ('' ~ symbol_pattern OR true),
    priority       integer NOT NULL,
    description    text,
    builtin        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE stocks_stream.exchanges IS
    'Exchanges and the time zone of their trading day: daily candles and daily summaries of a symbol cover its exchange''s calendar day in that zone (DST-correct). A symbol belongs to the exchange given in symbol_exchanges, else to the matching symbol_pattern of lowest priority. Built-in rows (US, CRYPTO) cannot be changed; add your own with a lower priority.';
COMMENT ON COLUMN stocks_stream.exchanges.exchange IS 'Exchange name, e.g. US, CRYPTO, LSE.';
COMMENT ON COLUMN stocks_stream.exchanges.time_zone IS 'IANA time zone of the exchange''s trading day, e.g. America/New_York; UTC for markets without a calendar.';
COMMENT ON COLUMN stocks_stream.exchanges.symbol_pattern IS 'Regular expression: symbols it matches belong to this exchange (unless mapped in symbol_exchanges).';
COMMENT ON COLUMN stocks_stream.exchanges.priority IS 'The matching pattern of the lowest priority wins.';
COMMENT ON COLUMN stocks_stream.exchanges.description IS 'Free text.';
COMMENT ON COLUMN stocks_stream.exchanges.builtin IS 'Made by the extension; read-only.';

INSERT INTO stocks_stream.exchanges (exchange, time_zone, symbol_pattern, priority, description, builtin) VALUES
    ('CRYPTO', 'UTC', '^[A-Z0-9_]+:', 100,
     'Symbols written EXCHANGE:PAIR (Finnhub crypto and forex, e.g. BINANCE:BTCUSDT): no exchange calendar, UTC days.', true),
    ('US', 'America/New_York', '', 1000,
     'US equities (every other symbol): days in New York time.', true);

CREATE TABLE stocks_stream.symbol_exchanges (
    symbol   text PRIMARY KEY,
    exchange text NOT NULL REFERENCES stocks_stream.exchanges ON UPDATE CASCADE
);
COMMENT ON TABLE stocks_stream.symbol_exchanges IS 'Per-symbol exchange, overriding the exchanges'' symbol patterns. After a change, call stocks_stream.rebuild_daily(symbol).';
COMMENT ON COLUMN stocks_stream.symbol_exchanges.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.symbol_exchanges.exchange IS 'Its exchange.';

CREATE FUNCTION stocks_stream._exchanges_builtin_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.builtin THEN
        RAISE EXCEPTION 'exchange "%" is built in and cannot be changed', OLD.exchange
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Add an exchange with a lower priority, or map symbols in stocks_stream.symbol_exchanges.';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.builtin THEN
        RAISE EXCEPTION 'only the extension makes built-in exchanges' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER exchanges_builtin_guard BEFORE UPDATE OR DELETE ON stocks_stream.exchanges
    FOR EACH ROW EXECUTE FUNCTION stocks_stream._exchanges_builtin_guard();

-- the user's rows are kept by pg_dump; the built-in ones come with the extension
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.exchanges', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.symbol_exchanges', '');

CREATE FUNCTION stocks_stream.symbol_exchange(p_symbol text, OUT exchange text, OUT time_zone text)
LANGUAGE sql STABLE AS $$
    SELECT x.exchange, x.time_zone FROM (
        SELECT e.exchange, e.time_zone, 0 AS rank, 0 AS priority
          FROM stocks_stream.symbol_exchanges m JOIN stocks_stream.exchanges e USING (exchange)
         WHERE m.symbol = p_symbol
        UNION ALL
        SELECT e.exchange, e.time_zone, 1, e.priority
          FROM stocks_stream.exchanges e
         WHERE p_symbol ~ e.symbol_pattern
        UNION ALL
        SELECT NULL, 'UTC', 2, 0) x
     ORDER BY x.rank, x.priority, x.exchange
     LIMIT 1
$$;
COMMENT ON FUNCTION stocks_stream.symbol_exchange IS 'The exchange of a symbol and the time zone of its trading day (UTC when no exchange matches).';

-- ---------------------------------------------------------------------------
-- Buckets that cannot be computed
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.gold_errors (
    symbol          text NOT NULL,
    target          text NOT NULL CHECK (target IN ('1m', '5m', '1h', '1d', 'daily_summary')),
    bucket_start    timestamptz NOT NULL,
    sqlstate        text NOT NULL,
    error           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, target, bucket_start)
);
COMMENT ON TABLE stocks_stream.gold_errors IS
    'Candles and daily summaries refresh_gold() could not compute (e.g. a numeric overflow from absurd values in silver), with the error. Their dirty minutes stay in gold_dirty, so every refresh retries them; a row disappears once its bucket computes. Every other bucket refreshes regardless.';
COMMENT ON COLUMN stocks_stream.gold_errors.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.gold_errors.target IS 'Candle interval (1m, 5m, 1h, 1d) or daily_summary.';
COMMENT ON COLUMN stocks_stream.gold_errors.bucket_start IS 'Start of the bucket (for daily_summary: of the exchange day).';
COMMENT ON COLUMN stocks_stream.gold_errors.sqlstate IS 'SQLSTATE of the error.';
COMMENT ON COLUMN stocks_stream.gold_errors.error IS 'Error message.';
COMMENT ON COLUMN stocks_stream.gold_errors.attempts IS 'Refreshes that failed on it.';
COMMENT ON COLUMN stocks_stream.gold_errors.first_failed_at IS 'First failure.';
COMMENT ON COLUMN stocks_stream.gold_errors.last_failed_at IS 'Latest failure.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_errors', '');

-- ---------------------------------------------------------------------------
-- Latest quote per symbol, kept by refresh_gold()
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.latest_quotes (
    symbol           text PRIMARY KEY,
    quote_time       timestamptz NOT NULL,
    price            double precision NOT NULL,
    change           double precision,
    change_pct       double precision,
    day_high         double precision NOT NULL,
    day_low          double precision NOT NULL,
    day_open         double precision NOT NULL,
    prev_close       double precision NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    refreshed_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.latest_quotes IS 'Gold: the latest quote of each symbol (by quote time, then Kafka partition and offset), kept by refresh_gold() from the minutes loaded since the last refresh.';
COMMENT ON COLUMN stocks_stream.latest_quotes.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.latest_quotes.quote_time IS 'Time of the quote (UTC).';
COMMENT ON COLUMN stocks_stream.latest_quotes.price IS 'Current price.';
COMMENT ON COLUMN stocks_stream.latest_quotes.change IS 'Change from the previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.change_pct IS 'Percent change from the previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_high IS 'High of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_low IS 'Low of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_open IS 'Open of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.prev_close IS 'Previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.source_partition IS 'Kafka partition of the quote (tie-break).';
COMMENT ON COLUMN stocks_stream.latest_quotes.source_offset IS 'Kafka offset of the quote (tie-break).';
COMMENT ON COLUMN stocks_stream.latest_quotes.refreshed_at IS 'When refresh_gold() last changed the row.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.latest_quotes', '');

-- an updated install starts from what silver holds
INSERT INTO stocks_stream.latest_quotes (symbol, quote_time, price, change, change_pct, day_high, day_low,
                                         day_open, prev_close, source_partition, source_offset)
SELECT DISTINCT ON (symbol) symbol, quote_time, price, change, change_pct, day_high, day_low, day_open, prev_close,
       source_partition, source_offset
  FROM stocks_stream.quotes
 ORDER BY symbol, quote_time DESC, source_partition DESC, source_offset DESC;

COMMENT ON TABLE stocks_stream.candles IS
    'Gold: OHLC candles per symbol and interval (1m, 5m, 1h: UTC buckets; 1d: the symbol''s exchange day, see stocks_stream.exchanges), from trades where the bucket has trades (volume and VWAP real), otherwise from quote prices (volume and VWAP NULL). Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.candles.bucket_start IS 'Start of the bucket (UTC); for 1d, midnight of the exchange day in its time zone.';
COMMENT ON TABLE stocks_stream.daily_summary IS 'Gold: one row per symbol and exchange day (in the time zone of the symbol''s exchange), from the day''s candles. Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.daily_summary.day IS 'Exchange day (its date in the exchange''s time zone; UTC for crypto).';

-- ---------------------------------------------------------------------------
-- refresh_gold()
-- ---------------------------------------------------------------------------

-- Upsert the candles of the buckets in pg_temp.ss_work (symbol, iv,
-- bucket_start, bucket_end), each recomputed from silver.
CREATE FUNCTION stocks_stream._upsert_candles() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO stocks_stream.candles AS c
        (symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count, built_from)
    SELECT b.symbol, b.iv, b.bucket_start, x.open, x.high, x.low, x.close, x.volume, x.vwap, x.n, x.built_from
      FROM pg_temp.ss_work b
      CROSS JOIN LATERAL (
          SELECT (array_agg(t.price ORDER BY t.trade_time, t.source_partition, t.source_offset))[1] AS open,
                 max(t.price) AS high, min(t.price) AS low,
                 (array_agg(t.price ORDER BY t.trade_time DESC, t.source_partition DESC, t.source_offset DESC))[1] AS close,
                 sum(t.volume) AS volume,
                 sum(t.price * t.volume) / nullif(sum(t.volume), 0) AS vwap,
                 count(*)::integer AS n, 'trades'::text AS built_from
            FROM stocks_stream.trades t
           WHERE t.symbol = b.symbol AND t.trade_time >= b.bucket_start AND t.trade_time < b.bucket_end
          HAVING count(*) > 0
          UNION ALL
          SELECT (array_agg(q.price ORDER BY q.quote_time, q.source_partition, q.source_offset))[1],
                 max(q.price), min(q.price),
                 (array_agg(q.price ORDER BY q.quote_time DESC, q.source_partition DESC, q.source_offset DESC))[1],
                 NULL, NULL, count(*)::integer, 'quotes'
            FROM stocks_stream.quotes q
           WHERE q.symbol = b.symbol AND q.quote_time >= b.bucket_start AND q.quote_time < b.bucket_end
             AND NOT EXISTS (SELECT 1 FROM stocks_stream.trades t
                              WHERE t.symbol = b.symbol AND t.trade_time >= b.bucket_start
                                AND t.trade_time < b.bucket_end)
          HAVING count(*) > 0
      ) x
    ON CONFLICT (symbol, interval, bucket_start) DO UPDATE
       SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
           volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, sample_count = EXCLUDED.sample_count,
           built_from = EXCLUDED.built_from, refreshed_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Upsert the daily summaries of the exchange days in pg_temp.ss_work (its
-- '1d' rows), from their 1d and 1m candles.
CREATE FUNCTION stocks_stream._upsert_daily_summaries() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO stocks_stream.daily_summary AS s
        (symbol, day, open, close, high, low, change, change_pct, volatility, volume)
    SELECT d.symbol, b.day, d.open, d.close, d.high, d.low,
           d.close - d.open, (d.close - d.open) / nullif(d.open, 0) * 100,
           (SELECT stddev_samp(r) FROM (
                SELECT ln(m.close / lag(m.close) OVER (ORDER BY m.bucket_start)) AS r
                  FROM stocks_stream.candles m
                 WHERE m.symbol = d.symbol AND m.interval = '1m'
                   AND m.bucket_start >= b.bucket_start AND m.bucket_start < b.bucket_end) rr),
           d.volume
      FROM pg_temp.ss_work b
      JOIN stocks_stream.candles d ON d.symbol = b.symbol AND d.interval = '1d' AND d.bucket_start = b.bucket_start
     WHERE b.iv = '1d'
    ON CONFLICT (symbol, day) DO UPDATE
       SET open = EXCLUDED.open, close = EXCLUDED.close, high = EXCLUDED.high, low = EXCLUDED.low,
           change = EXCLUDED.change, change_pct = EXCLUDED.change_pct, volatility = EXCLUDED.volatility,
           volume = EXCLUDED.volume, refreshed_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Run step ('candles' or 'summaries') over every bucket of pg_temp.ss_buckets
-- (for summaries: the 1d buckets whose candle computed).  In one statement
-- when it can; when that fails, bucket by bucket, each in a subtransaction,
-- so one bucket that cannot be computed is recorded in pg_temp.ss_failed
-- and every other one is still written.
CREATE FUNCTION stocks_stream._refresh_step(step text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    done bigint := 0;
    b record;
    msg text;
    state text;
    target_of text;
BEGIN
    DELETE FROM pg_temp.ss_work;
    INSERT INTO pg_temp.ss_work
    SELECT s.symbol, s.iv, s.bucket_start, s.bucket_end, s.day FROM pg_temp.ss_buckets s
     WHERE step = 'candles'
        OR (s.iv = '1d' AND NOT EXISTS (SELECT 1 FROM pg_temp.ss_failed f
                                         WHERE f.symbol = s.symbol AND f.target = '1d'
                                           AND f.bucket_start = s.bucket_start));
    BEGIN
        IF step = 'candles' THEN
            done := stocks_stream._upsert_candles();
        ELSE
            done := stocks_stream._upsert_daily_summaries();
        END IF;
        RETURN done;
    EXCEPTION WHEN OTHERS THEN
        -- fall through: isolate the bucket(s) that fail
    END;
    done := 0;
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_todo (LIKE pg_temp.ss_work) ON COMMIT DROP;
    DELETE FROM pg_temp.ss_todo;
    INSERT INTO pg_temp.ss_todo SELECT * FROM pg_temp.ss_work;
    FOR b IN SELECT * FROM pg_temp.ss_todo ORDER BY symbol, iv, bucket_start LOOP
        DELETE FROM pg_temp.ss_work;
        INSERT INTO pg_temp.ss_work VALUES (b.symbol, b.iv, b.bucket_start, b.bucket_end, b.day);
        BEGIN
            IF step = 'candles' THEN
                done := done + stocks_stream._upsert_candles();
            ELSE
                done := done + stocks_stream._upsert_daily_summaries();
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
            target_of := CASE WHEN step = 'candles' THEN b.iv ELSE 'daily_summary' END;
            INSERT INTO pg_temp.ss_failed VALUES (b.symbol, target_of, b.bucket_start, b.bucket_end, state, msg);
            RAISE WARNING 'refresh_gold skipped % % of %: %', target_of, b.bucket_start, b.symbol, msg
                USING DETAIL = 'Recorded in stocks_stream.gold_errors; its minutes stay in stocks_stream.gold_dirty and the next refresh retries it.',
                      HINT = 'Correct or delete the offending silver rows; every other bucket was refreshed.';
        END;
    END LOOP;
    RETURN done;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.refresh_gold()
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    updated bigint := 0;
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

    -- the buckets they touch: 1m, 5m and 1h in UTC; 1d is the exchange day
    -- in the symbol's time zone (23, 24 or 25 hours long)
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_buckets
        (symbol text, iv text, bucket_start timestamptz, bucket_end timestamptz, day date) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_work (LIKE pg_temp.ss_buckets) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_failed
        (symbol text, target text, bucket_start timestamptz, bucket_end timestamptz, sqlstate text, error text)
        ON COMMIT DROP;
    TRUNCATE pg_temp.ss_buckets, pg_temp.ss_work, pg_temp.ss_failed;
    INSERT INTO pg_temp.ss_buckets
    SELECT DISTINCT d.symbol, v.iv, b.bucket_start, b.bucket_end, b.day
      FROM pg_temp.ss_dirty d
      JOIN (SELECT s.symbol, (stocks_stream.symbol_exchange(s.symbol)).time_zone AS tz
              FROM (SELECT DISTINCT symbol FROM pg_temp.ss_dirty) s) z ON z.symbol = d.symbol
      CROSS JOIN unnest(ARRAY['1m', '5m', '1h', '1d']) v(iv)
      CROSS JOIN LATERAL (SELECT date_trunc('day', d.minute AT TIME ZONE z.tz) AS local_day) l
      CROSS JOIN LATERAL (
          SELECT CASE WHEN v.iv = '1d' THEN l.local_day AT TIME ZONE z.tz
                      ELSE stocks_stream._bucket(v.iv, d.minute) END AS bucket_start,
                 CASE WHEN v.iv = '1d' THEN (l.local_day + interval '1 day') AT TIME ZONE z.tz
                      ELSE stocks_stream._bucket(v.iv, d.minute) + stocks_stream._width(v.iv) END AS bucket_end,
                 CASE WHEN v.iv = '1d' THEN l.local_day::date END AS day) b;

    -- recompute every touched bucket from silver, open/close by event time;
    -- then the daily summaries of the touched exchange days
    updated := stocks_stream._refresh_step('candles');
    PERFORM stocks_stream._refresh_step('summaries');

    -- what could not be computed: kept with its error, its minutes dirty again
    INSERT INTO stocks_stream.gold_errors AS e (symbol, target, bucket_start, sqlstate, error)
    SELECT symbol, target, bucket_start, sqlstate, error FROM pg_temp.ss_failed
    ON CONFLICT (symbol, target, bucket_start) DO UPDATE
       SET sqlstate = EXCLUDED.sqlstate, error = EXCLUDED.error, attempts = e.attempts + 1, last_failed_at = now();
    INSERT INTO stocks_stream.gold_dirty (symbol, minute)
    SELECT DISTINCT d.symbol, d.minute
      FROM pg_temp.ss_dirty d JOIN pg_temp.ss_failed f
        ON f.symbol = d.symbol AND d.minute >= f.bucket_start AND d.minute < f.bucket_end
    ON CONFLICT DO NOTHING;
    -- what computed now is no longer in error
    DELETE FROM stocks_stream.gold_errors e
     USING pg_temp.ss_buckets b
     WHERE e.symbol = b.symbol AND e.bucket_start = b.bucket_start
       AND e.target IN (b.iv, CASE WHEN b.iv = '1d' THEN 'daily_summary' END)
       AND NOT EXISTS (SELECT 1 FROM pg_temp.ss_failed f
                        WHERE f.symbol = e.symbol AND f.target = e.target AND f.bucket_start = e.bucket_start);

    -- the latest quote of each symbol with new minutes: any quote loaded
    -- since the last refresh lies in one of them
    INSERT INTO stocks_stream.latest_quotes AS l
        (symbol, quote_time, price, change, change_pct, day_high, day_low, day_open, prev_close,
         source_partition, source_offset)
    SELECT q.symbol, q.quote_time, q.price, q.change, q.change_pct, q.day_high, q.day_low, q.day_open,
           q.prev_close, q.source_partition, q.source_offset
      FROM (SELECT symbol, min(minute) AS first_minute, max(minute) AS last_minute
              FROM pg_temp.ss_dirty GROUP BY symbol) s
      CROSS JOIN LATERAL (
          SELECT * FROM stocks_stream.quotes q
           WHERE q.symbol = s.symbol AND q.quote_time >= s.first_minute
             AND q.quote_time < s.last_minute + interval '1 minute'
           ORDER BY q.quote_time DESC, q.source_partition DESC, q.source_offset DESC
           LIMIT 1) q
    ON CONFLICT (symbol) DO UPDATE
       SET quote_time = EXCLUDED.quote_time, price = EXCLUDED.price, change = EXCLUDED.change,
           change_pct = EXCLUDED.change_pct, day_high = EXCLUDED.day_high, day_low = EXCLUDED.day_low,
           day_open = EXCLUDED.day_open, prev_close = EXCLUDED.prev_close,
           source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset, refreshed_at = now()
     WHERE (EXCLUDED.quote_time, EXCLUDED.source_partition, EXCLUDED.source_offset)
           > (l.quote_time, l.source_partition, l.source_offset);
    RETURN updated;
END;
$$;
COMMENT ON FUNCTION stocks_stream.refresh_gold IS
    'Recompute the candles (1m, 5m, 1h in UTC; 1d on the exchange day), daily summaries and latest quotes touched by rows loaded since the last refresh; idempotent; returns how many candles it updated. A bucket that cannot be computed is skipped with a WARNING, recorded in gold_errors and retried by the next refresh; every other bucket refreshes.';

-- Recompute the daily candles and summaries of one symbol (or all) on the
-- exchange days as configured now, e.g. after editing exchanges or
-- symbol_exchanges: they are dropped and every hour with data is marked for
-- the next refresh_gold().
CREATE FUNCTION stocks_stream.rebuild_daily(p_symbol text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    marked bigint;
BEGIN
    INSERT INTO stocks_stream.gold_dirty (symbol, minute)
    SELECT symbol, bucket_start FROM stocks_stream.candles
     WHERE interval = '1h' AND (p_symbol IS NULL OR symbol = p_symbol)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS marked = ROW_COUNT;
    DELETE FROM stocks_stream.candles WHERE interval = '1d' AND (p_symbol IS NULL OR symbol = p_symbol);
    DELETE FROM stocks_stream.daily_summary WHERE p_symbol IS NULL OR symbol = p_symbol;
    RETURN marked;
END;
$$;
COMMENT ON FUNCTION stocks_stream.rebuild_daily IS
    'Drop the daily candles and summaries of a symbol (NULL: all) and mark every hour with data dirty, so the next refresh_gold() rebuilds them on the exchange days configured now; returns the hours marked.';

-- 0.1.0 built daily bars on UTC days: rebuild those of symbols whose
-- exchange day is not the UTC day
DO $$
DECLARE
    s text;
BEGIN
    FOR s IN SELECT DISTINCT symbol FROM stocks_stream.candles WHERE interval = '1d' LOOP
        IF (stocks_stream.symbol_exchange(s)).time_zone <> 'UTC' THEN
            PERFORM stocks_stream.rebuild_daily(s);
        END IF;
    END LOOP;
END;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;
