-- Gold, 0.3.0: refresh_gold() costs what the new minutes cost, not what
-- the day or the history holds (bench/scale).
--
-- Until 0.2.0 every touched bucket was recomputed from silver: one new
-- minute re-read the whole hour and the whole exchange day of its symbol,
-- so a refresh late in a busy day read every row of that day.  Now only
-- 1m candles are computed from silver; each coarser bucket is rolled up
-- from the candles one level down, which the same refresh has just
-- brought up to date: 5m from at most 5 1m candles, 1h from at most 12 5m
-- candles, and the exchange day from at most 25 1h candles (or from 5m or
-- 1m candles when the day of its time zone does not start on a whole
-- hour).  The result is the same: a bucket is built from trades when any
-- minute in it has trades (its open and close those of its first and last
-- such minute, volume and sample count summed, VWAP weighted by volume),
-- otherwise from quotes; and a bucket holding a minute that cannot be
-- computed is in error with it.  The one difference: silver rows deleted
-- by hand leave their minute's candle as it was (0.2.0 kept it too), and
-- the buckets above now keep counting it until that minute is refreshed.

-- Upsert the candles of the buckets in pg_temp.ss_work (symbol, iv,
-- bucket_start, bucket_end): 1m from silver, then 5m, 1h and 1d, each from
-- the candles of the level below.
CREATE OR REPLACE FUNCTION stocks_stream._upsert_candles() RETURNS bigint
LANGUAGE plpgsql AS $$
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
    END LOOP;
    RETURN done;
END;
$$;

-- The candles a bucket of interval iv from bucket_start to bucket_end is
-- rolled up from: the level below, or for an exchange day the coarsest
-- level its start and end fall on (a day in a zone of a whole-hour offset
-- is made of hours; India's of 5-minute buckets).
CREATE FUNCTION stocks_stream._candle_source(iv text, bucket_start timestamptz, bucket_end timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE iv
        WHEN '5m' THEN '1m'
        WHEN '1h' THEN '5m'
        ELSE CASE
            WHEN extract(epoch FROM bucket_start)::numeric % 3600 = 0
             AND extract(epoch FROM bucket_end)::numeric % 3600 = 0 THEN '1h'
            WHEN extract(epoch FROM bucket_start)::numeric % 300 = 0
             AND extract(epoch FROM bucket_end)::numeric % 300 = 0 THEN '5m'
            ELSE '1m' END
        END
$$;

-- As in 0.2.0, except that when buckets are refreshed one by one (one of
-- them failed), the finer ones go first: coarser candles are made of them.
CREATE OR REPLACE FUNCTION stocks_stream._refresh_step(step text) RETURNS bigint
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
            RAISE WARNING 'refresh_gold skipped % % of %: %', target_of, b.bucket_start, b.symbol, msg
                USING DETAIL = 'Recorded in stocks_stream.gold_errors; its minutes stay in stocks_stream.gold_dirty and the next refresh retries it.',
                      HINT = 'Correct or delete the offending silver rows; every other bucket was refreshed.';
        END;
    END LOOP;
    RETURN done;
END;
$$;

REVOKE ALL ON FUNCTION stocks_stream._candle_source(text, timestamptz, timestamptz) FROM PUBLIC;
