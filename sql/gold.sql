-- stocks_stream: gold (silver -> candles, daily summaries, latest quotes),
-- refreshed incrementally from the minutes load_bronze() marks dirty, and
-- the exchanges whose time zone a symbol's trading day follows.

CREATE OR REPLACE FUNCTION stocks_stream._bucket(iv text, t timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT
    RETURN CASE iv
        WHEN '1m' THEN date_bin('1 minute', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '5m' THEN date_bin('5 minutes', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '1h' THEN date_bin('1 hour', t, timestamptz '2000-01-01 00:00:00+00')
        WHEN '1d' THEN date_bin('1 day', t, timestamptz '2000-01-01 00:00:00+00')
    END;

CREATE OR REPLACE FUNCTION stocks_stream._width(iv text)
RETURNS interval LANGUAGE sql IMMUTABLE STRICT
    RETURN CASE iv WHEN '1m' THEN interval '1 minute' WHEN '5m' THEN interval '5 minutes'
                   WHEN '1h' THEN interval '1 hour' WHEN '1d' THEN interval '1 day' END;

CREATE OR REPLACE FUNCTION stocks_stream._exchanges_builtin_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.builtin THEN
        RAISE EXCEPTION 'stocks_stream: exchange "%" is built in and cannot be changed', OLD.exchange
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Add an exchange with a lower priority, or map symbols in stocks_stream.symbol_exchanges.';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.builtin THEN
        RAISE EXCEPTION 'stocks_stream: only the extension makes built-in exchanges' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER exchanges_builtin_guard BEFORE UPDATE OR DELETE ON stocks_stream.exchanges
    FOR EACH ROW EXECUTE FUNCTION stocks_stream._exchanges_builtin_guard();

CREATE OR REPLACE FUNCTION stocks_stream.symbol_exchange(p_symbol text, OUT exchange text, OUT time_zone text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
-- refresh_gold(): what a refresh costs is what the new minutes cost
-- ---------------------------------------------------------------------------
-- Only 1m candles are computed from silver; each coarser bucket is rolled
-- up from the candles one level down, which the same refresh has just
-- brought up to date: 5m from at most 5 1m candles, 1h from at most 12 5m
-- candles, and the exchange day from at most 25 1h candles (or from 5m or
-- 1m candles when the day of its time zone does not start on a whole
-- hour).  A bucket is built from trades when any minute in it has trades
-- (its open and close those of its first and last such minute, volume and
-- sample count summed, VWAP weighted by volume), otherwise from quotes; a
-- bucket holding a minute that cannot be computed is in error with it
-- (gold_errors), and every other bucket refreshes regardless.  A day's
-- volatility is combined from hour_returns.
--
-- Refreshes run one at a time (a transaction-level advisory lock): two side
-- by side could each roll up the hour from minutes the other had not
-- committed yet.  A real-time pipeline's worker refreshes the minutes of
-- the last ten minutes after its loads with refresh_gold(since, wait =>
-- false), which returns NULL at once when a refresh is running; older
-- minutes stay dirty for the scheduled refresh_gold() (refresh_gold(NULL)).

-- Upsert the candles of the buckets in pg_temp.ss_work (symbol, iv,
-- bucket_start, bucket_end): 1m from silver, then 5m, 1h and 1d, each from
-- the candles of the level below.
CREATE OR REPLACE FUNCTION stocks_stream._upsert_candles() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    done bigint := 0;
    level text;
    state text;
    msg text;
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
     WHERE b.iv = '1m'
       -- a minute of a day tiered to the lake (sql/lake.sql) keeps its
       -- candle: silver holds at most the rows that came after the drop
       AND NOT (EXISTS (SELECT 1 FROM stocks_stream.candles c0
                         WHERE c0.symbol = b.symbol AND c0.interval = '1m' AND c0.bucket_start = b.bucket_start)
                AND EXISTS (SELECT 1 FROM stocks_stream.lake_days ld
                             WHERE ld.day = (b.bucket_start AT TIME ZONE 'UTC')::date
                               AND (ld.state = 'dropped' OR ld.round > 1)))
    ON CONFLICT (symbol, interval, bucket_start) DO UPDATE
       SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
           volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, sample_count = EXCLUDED.sample_count,
           built_from = EXCLUDED.built_from, refreshed_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    done := n;

    FOREACH level IN ARRAY ARRAY['5m', '1h', '1d'] LOOP
        -- a bucket holding a finer one that could not be computed (when
        -- buckets are refreshed one by one) cannot be computed either
        SELECT f.sqlstate, f.error INTO state, msg
          FROM pg_temp.ss_work b JOIN pg_temp.ss_failed f
            ON f.symbol = b.symbol AND f.target IN ('1m', '5m', '1h')
           AND f.bucket_start >= b.bucket_start AND f.bucket_start < b.bucket_end
         WHERE b.iv = level
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg;
        END IF;
        INSERT INTO stocks_stream.candles AS c
            (symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count, built_from)
        SELECT b.symbol, b.iv, b.bucket_start, x.open, x.high, x.low, x.close, x.volume, x.vwap, x.n, x.built_from
          FROM pg_temp.ss_work b
          CROSS JOIN LATERAL (SELECT stocks_stream._candle_source(b.iv, b.bucket_start, b.bucket_end) AS iv) s
          CROSS JOIN LATERAL (
              SELECT (array_agg(m.open ORDER BY m.bucket_start))[1] AS open,
                     max(m.high) AS high, min(m.low) AS low,
                     (array_agg(m.close ORDER BY m.bucket_start DESC))[1] AS close,
                     sum(m.volume) AS volume,
                     sum(m.vwap * m.volume) / nullif(sum(m.volume), 0) AS vwap,
                     sum(m.sample_count)::integer AS n, 'trades'::text AS built_from
                FROM stocks_stream.candles m
               WHERE m.symbol = b.symbol AND m.interval = s.iv AND m.bucket_start >= b.bucket_start
                 AND m.bucket_start < b.bucket_end AND m.built_from = 'trades'
              HAVING count(*) > 0
              UNION ALL
              SELECT (array_agg(m.open ORDER BY m.bucket_start))[1],
                     max(m.high), min(m.low),
                     (array_agg(m.close ORDER BY m.bucket_start DESC))[1],
                     NULL, NULL, sum(m.sample_count)::integer, 'quotes'
                FROM stocks_stream.candles m
               WHERE m.symbol = b.symbol AND m.interval = s.iv AND m.bucket_start >= b.bucket_start
                 AND m.bucket_start < b.bucket_end
                 AND NOT EXISTS (SELECT 1 FROM stocks_stream.candles t
                                  WHERE t.symbol = b.symbol AND t.interval = s.iv
                                    AND t.bucket_start >= b.bucket_start AND t.bucket_start < b.bucket_end
                                    AND t.built_from = 'trades')
              HAVING count(*) > 0
          ) x
         WHERE b.iv = level
        ON CONFLICT (symbol, interval, bucket_start) DO UPDATE
           SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
               volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, sample_count = EXCLUDED.sample_count,
               built_from = EXCLUDED.built_from, refreshed_at = now();
        GET DIAGNOSTICS n = ROW_COUNT;
        done := done + n;
        IF level = '1h' THEN
            INSERT INTO stocks_stream.hour_returns AS h
                (symbol, hour, returns, sum_r, sum_r2, first_close, last_close)
            SELECT b.symbol, b.bucket_start, x.n, x.s1, x.s2, x.fc, x.lc
              FROM pg_temp.ss_work b
              CROSS JOIN LATERAL (
                  SELECT count(rr.r)::integer AS n, coalesce(sum(rr.r), 0) AS s1, coalesce(sum(rr.r * rr.r), 0) AS s2,
                         (array_agg(rr.close ORDER BY rr.bucket_start))[1] AS fc,
                         (array_agg(rr.close ORDER BY rr.bucket_start DESC))[1] AS lc
                    FROM (SELECT m.close, m.bucket_start,
                                 ln(m.close / lag(m.close) OVER (ORDER BY m.bucket_start)) AS r
                            FROM stocks_stream.candles m
                           WHERE m.symbol = b.symbol AND m.interval = '1m'
                             AND m.bucket_start >= b.bucket_start AND m.bucket_start < b.bucket_end) rr
                  HAVING count(*) > 0) x
             WHERE b.iv = '1h'
            ON CONFLICT (symbol, hour) DO UPDATE
               SET returns = EXCLUDED.returns, sum_r = EXCLUDED.sum_r, sum_r2 = EXCLUDED.sum_r2,
                   first_close = EXCLUDED.first_close, last_close = EXCLUDED.last_close;
        END IF;
    END LOOP;
    RETURN done;
END;
$$;

-- Upsert the daily summaries of the exchange days in pg_temp.ss_work (its
-- '1d' rows), from their 1d candles; the volatility (sample standard
-- deviation of the day's 1-minute log returns) from the day's hour_returns
-- when every hour with a 1h candle has its row there, adding the return
-- across each pair of consecutive hours, otherwise from the 1m candles.
CREATE OR REPLACE FUNCTION stocks_stream._upsert_daily_summaries() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO stocks_stream.daily_summary AS s
        (symbol, day, open, close, high, low, change, change_pct, volatility, volume)
    SELECT d.symbol, b.day, d.open, d.close, d.high, d.low,
           d.close - d.open, (d.close - d.open) / nullif(d.open, 0) * 100,
           CASE WHEN stocks_stream._candle_source('1d', b.bucket_start, b.bucket_end) = '1h'
                 AND NOT EXISTS (SELECT 1 FROM stocks_stream.candles c
                                  WHERE c.symbol = d.symbol AND c.interval = '1h'
                                    AND c.bucket_start >= b.bucket_start AND c.bucket_start < b.bucket_end
                                    AND NOT EXISTS (SELECT 1 FROM stocks_stream.hour_returns h
                                                     WHERE h.symbol = c.symbol AND h.hour = c.bucket_start))
                 AND NOT EXISTS (SELECT 1 FROM stocks_stream.hour_returns h
                                  WHERE h.symbol = d.symbol AND h.hour >= b.bucket_start AND h.hour < b.bucket_end
                                    AND NOT EXISTS (SELECT 1 FROM stocks_stream.candles c
                                                     WHERE c.symbol = h.symbol AND c.interval = '1h'
                                                       AND c.bucket_start = h.hour))
           THEN (SELECT CASE WHEN sum(k) > 1
                             THEN sqrt(greatest((sum(s2) - sum(s1) * sum(s1) / sum(k)) / (sum(k) - 1), 0)) END
                   FROM (SELECT hr.returns + (hr.br IS NOT NULL)::integer AS k,
                                hr.sum_r + coalesce(hr.br, 0) AS s1, hr.sum_r2 + coalesce(hr.br * hr.br, 0) AS s2
                           FROM (SELECT h.*, ln(h.first_close / lag(h.last_close) OVER (ORDER BY h.hour)) AS br
                                   FROM stocks_stream.hour_returns h
                                  WHERE h.symbol = d.symbol AND h.hour >= b.bucket_start
                                    AND h.hour < b.bucket_end) hr) hh)
           ELSE (SELECT stddev_samp(r) FROM (
                     SELECT ln(m.close / lag(m.close) OVER (ORDER BY m.bucket_start)) AS r
                       FROM stocks_stream.candles m
                      WHERE m.symbol = d.symbol AND m.interval = '1m'
                        AND m.bucket_start >= b.bucket_start AND m.bucket_start < b.bucket_end) rr)
           END,
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

-- The candles a bucket of interval iv from bucket_start to bucket_end is
-- rolled up from: the level below, or for an exchange day the coarsest
-- level its start and end fall on (a day in a zone of a whole-hour offset
-- is made of hours; India's of 5-minute buckets).
CREATE OR REPLACE FUNCTION stocks_stream._candle_source(iv text, bucket_start timestamptz, bucket_end timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE STRICT
    RETURN CASE iv
        WHEN '5m' THEN '1m'
        WHEN '1h' THEN '5m'
        ELSE CASE
            WHEN extract(epoch FROM bucket_start)::numeric % 3600 = 0
             AND extract(epoch FROM bucket_end)::numeric % 3600 = 0 THEN '1h'
            WHEN extract(epoch FROM bucket_start)::numeric % 300 = 0
             AND extract(epoch FROM bucket_end)::numeric % 300 = 0 THEN '5m'
            ELSE '1m' END
        END;

-- One step of a refresh: all its buckets in one statement, or when that
-- fails, bucket by bucket (the ones that fail recorded in gold_errors),
-- the finer ones first: coarser candles are made of them.
CREATE OR REPLACE FUNCTION stocks_stream._refresh_step(step text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
    FOR b IN SELECT * FROM pg_temp.ss_todo
              ORDER BY array_position(ARRAY['1m', '5m', '1h', '1d'], iv), symbol, bucket_start LOOP
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
            RAISE WARNING 'stocks_stream: refresh_gold skipped % % of %: %', target_of, b.bucket_start, b.symbol, msg
                USING DETAIL = 'Recorded in stocks_stream.gold_errors; its minutes stay in stocks_stream.gold_dirty and the next refresh retries it.',
                      HINT = 'Correct or delete the offending silver rows; every other bucket was refreshed.';
        END;
    END LOOP;
    RETURN done;
END;
$$;

-- refresh_gold() runs as the extension's owner (SECURITY DEFINER, so the
-- operator never writes gold directly) and keeps its work in temporary
-- tables of the caller's session.  A table of one of those names that the
-- caller made first (with a trigger or a rule, or a view) would run the
-- caller's code with the owner's rights, so each must be absent or one that
-- refresh_gold() made, as the owner, earlier in the transaction.
CREATE OR REPLACE FUNCTION stocks_stream._check_work_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad text;
BEGIN
    SELECT c.relname INTO bad FROM pg_catalog.pg_class c
     WHERE c.relnamespace = pg_catalog.pg_my_temp_schema()
       AND c.relname IN ('ss_dirty', 'ss_buckets', 'ss_work', 'ss_failed', 'ss_todo')
       AND (c.relowner <> pg_catalog.to_regrole(current_user) OR c.relkind <> 'r'
            OR c.relhastriggers OR c.relhasrules OR c.relrowsecurity)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'stocks_stream.refresh_gold: cannot use the temporary table "%" of this session', bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('refresh_gold() keeps its work in temporary tables of that name: DROP TABLE pg_temp.%I, or refresh from a new session.', bad);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.refresh_gold(since timestamptz, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    updated bigint := 0;
    started timestamptz := clock_timestamp();
BEGIN
    IF wait IS NULL THEN
        RAISE EXCEPTION 'stocks_stream.refresh_gold: wait must be true or false, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM stocks_stream._check_work_tables();
    -- one refresh at a time: coarser candles roll up from finer ones, which
    -- a refresh running beside this one may be rewriting
    IF wait THEN
        PERFORM pg_advisory_xact_lock(hashtext('stocks_stream.refresh_gold'));
    ELSIF NOT pg_try_advisory_xact_lock(hashtext('stocks_stream.refresh_gold')) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM stocks_stream.gold_dirty WHERE since IS NULL OR minute >= since) THEN
        RETURN 0;
    END IF;
    -- take the dirty minutes (from since on)
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.ss_dirty (symbol text, minute timestamptz) ON COMMIT DROP;
    TRUNCATE pg_temp.ss_dirty;
    WITH taken AS (
        DELETE FROM stocks_stream.gold_dirty d
         WHERE (d.symbol, d.minute) IN (SELECT symbol, minute FROM stocks_stream.gold_dirty
                                         WHERE since IS NULL OR minute >= since
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
    PERFORM stocks_stream._observe_gold_refresh(clock_timestamp() - started);
    RETURN updated;
END;
$$;
COMMENT ON FUNCTION stocks_stream.refresh_gold(timestamptz, boolean) IS
    'refresh_gold() for the dirty minutes from since on (all when since is NULL). Refreshes run one at a time; with wait => false it returns NULL at once, refreshing nothing, when another refresh is running. Real-time pipelines call it after their loads for the last ten minutes.';

CREATE OR REPLACE FUNCTION stocks_stream.refresh_gold()
RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT stocks_stream.refresh_gold(NULL::timestamptz)
$$;
COMMENT ON FUNCTION stocks_stream.refresh_gold() IS
    'Recompute the candles (1m, 5m, 1h in UTC; 1d on the exchange day), daily summaries and latest quotes touched by rows loaded since the last refresh; idempotent; returns how many candles it updated. A bucket that cannot be computed is skipped with a WARNING, recorded in gold_errors and retried by the next refresh; every other bucket refreshes.';

-- Recompute the daily candles and summaries of one symbol (or all) on the
-- exchange days as configured now, e.g. after editing exchanges or
-- symbol_exchanges: they are dropped and every hour with data is marked for
-- the next refresh_gold().
CREATE OR REPLACE FUNCTION stocks_stream.rebuild_daily(p_symbol text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
