-- Gold kept fresh in real time.  A real-time pipeline's worker refreshes
-- gold itself after its loads (at most once per batch age), for the
-- minutes of the last ten minutes only: refresh_gold(since, wait => false).
-- Older minutes (a backfill, a pipeline catching up) stay dirty for the
-- scheduled refresh_gold(), so a real-time worker never takes on a
-- backfill's refresh.
--
-- Refreshes now run one at a time (a transaction-level advisory lock):
-- since 0.3.0 coarser candles roll up from finer ones, and two refreshes
-- side by side could each roll up the hour from minutes the other had not
-- committed yet.  The worker does not wait for the lock (wait => false
-- returns NULL at once when a refresh is running) and tries again later.
--
-- refresh_gold() is refresh_gold(NULL): every dirty minute, as before.
-- Its body moved here unchanged but for the lock, the early return when
-- nothing is dirty (no temporary tables made for nothing), and the filter
-- on since.

CREATE INDEX gold_dirty_minute_idx ON stocks_stream.gold_dirty (minute);

CREATE FUNCTION stocks_stream.refresh_gold(since timestamptz, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    updated bigint := 0;
BEGIN
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
    RETURN updated;
END;
$$;
COMMENT ON FUNCTION stocks_stream.refresh_gold(timestamptz, boolean) IS
    'refresh_gold() for the dirty minutes from since on (all when since is NULL). Refreshes run one at a time; with wait => false it returns NULL at once, refreshing nothing, when another refresh is running. Real-time pipelines call it after their loads for the last ten minutes.';

CREATE OR REPLACE FUNCTION stocks_stream.refresh_gold()
RETURNS bigint LANGUAGE sql AS $$
    SELECT stocks_stream.refresh_gold(NULL::timestamptz)
$$;
REVOKE ALL ON FUNCTION stocks_stream.refresh_gold(timestamptz, boolean) FROM PUBLIC;
