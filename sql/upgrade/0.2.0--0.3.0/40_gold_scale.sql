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

-- The 1-minute log returns of each hour, summed: what a day's volatility
-- (their sample standard deviation over the exchange day) is combined from
-- without reading the day's 1m candles again.  Kept by refresh_gold() with
-- the 1h candles; a day whose hours are not all here (hours refreshed
-- before 0.3.0, or a day that does not start on a whole hour) is computed
-- from its 1m candles as before.
CREATE TABLE stocks_stream.hour_returns (
    symbol      text NOT NULL,
    hour        timestamptz NOT NULL,
    returns     integer NOT NULL,
    sum_r       double precision NOT NULL,
    sum_r2      double precision NOT NULL,
    first_close double precision NOT NULL,
    last_close  double precision NOT NULL,
    PRIMARY KEY (symbol, hour)
);
COMMENT ON TABLE stocks_stream.hour_returns IS
    'Gold (internal): per symbol and UTC hour, the 1-minute log returns within the hour (count, sum, sum of squares) and the hour''s first and last 1m close, from which refresh_gold() combines a day''s volatility. Maintained by refresh_gold() with the 1h candles.';
COMMENT ON COLUMN stocks_stream.hour_returns.hour IS 'Start of the hour (UTC), as the 1h candle''s bucket_start.';
COMMENT ON COLUMN stocks_stream.hour_returns.returns IS 'Returns between consecutive 1m candles of the hour (minutes with candles less one).';
COMMENT ON COLUMN stocks_stream.hour_returns.sum_r IS 'Sum of those log returns.';
COMMENT ON COLUMN stocks_stream.hour_returns.sum_r2 IS 'Sum of their squares.';
COMMENT ON COLUMN stocks_stream.hour_returns.first_close IS 'Close of the hour''s first 1m candle.';
COMMENT ON COLUMN stocks_stream.hour_returns.last_close IS 'Close of the hour''s last 1m candle.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.hour_returns', '');

-- The hours of the last two days with candles, so that the current day's
-- summaries take the short way from the first refresh on (older days keep
-- the long way until refreshed again)
INSERT INTO stocks_stream.hour_returns (symbol, hour, returns, sum_r, sum_r2, first_close, last_close)
SELECT symbol, date_trunc('hour', bucket_start), count(r), coalesce(sum(r), 0), coalesce(sum(r * r), 0),
       (array_agg(close ORDER BY bucket_start))[1], (array_agg(close ORDER BY bucket_start DESC))[1]
  FROM (SELECT symbol, bucket_start, close,
               ln(close / lag(close) OVER (PARTITION BY symbol, date_trunc('hour', bucket_start)
                                             ORDER BY bucket_start)) AS r
          FROM stocks_stream.candles
         WHERE interval = '1m'
           AND bucket_start >= (SELECT date_trunc('hour', max(bucket_start) - interval '2 days')
                                  FROM stocks_stream.candles WHERE interval = '1m')) m
 GROUP BY symbol, date_trunc('hour', bucket_start);

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
LANGUAGE plpgsql AS $$
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
REVOKE ALL ON stocks_stream.hour_returns FROM PUBLIC;
