-- The SQL contract PostgREST relies on, exercised the way it runs a request:
-- as the anonymous role, with the request's claims and headers set locally.
SET TIME ZONE 'UTC';
TRUNCATE stocks_stream.candles, stocks_stream.daily_summary, stocks_stream.quotes, stocks_stream.latest_quotes;
INSERT INTO stocks_stream.candles (symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count, built_from) VALUES
  ('AAPL', '1m', '2025-11-24 10:00', 100, 104, 98, 104, 60, 101.5, 3, 'trades'),
  ('AAPL', '1m', '2025-11-24 10:01', 104, 105, 102, 102, 40, 103.0, 2, 'trades'),
  ('MSFT', '1m', '2025-11-24 10:00', 50, 52, 49, 52, NULL, NULL, 3, 'quotes');
INSERT INTO stocks_stream.daily_summary (symbol, day, open, close, high, low, change, change_pct, volatility, volume) VALUES
  ('AAPL', '2025-11-23', 90, 100, 101, 89, 10, 11.11, 0.01, 500),
  ('AAPL', '2025-11-24', 100, 102, 105, 98, 2, 2.0, 0.02, 100),
  ('MSFT', '2025-11-24', 50, 49, 52, 48, -1, -2.0, 0.03, NULL),
  ('NVDA', '2025-11-24', 120, 126, 127, 119, 6, 5.0, 0.04, 300);
SELECT stocks_stream.ensure_day_partition('2025-11-24');
INSERT INTO stocks_stream.quotes (symbol, quote_time, price, change, change_pct, day_high, day_low, day_open, prev_close,
                                  source_topic, source_partition, source_offset) VALUES
  ('AAPL', '2025-11-24 10:00:00', 101, 1, 1, 105, 98, 100, 100, 'api', 0, 1),
  ('AAPL', '2025-11-24 10:05:00', 102, 2, 2, 105, 98, 100, 100, 'api', 0, 2),
  ('MSFT', '2025-11-24 10:02:00', 49, -1, -2, 52, 48, 50, 50, 'api', 0, 3);
-- what refresh_gold() keeps of them: the latest quote of each symbol
INSERT INTO stocks_stream.latest_quotes (symbol, quote_time, price, change, change_pct, day_high, day_low, day_open,
                                         prev_close, source_partition, source_offset) VALUES
  ('AAPL', '2025-11-24 10:05:00', 102, 2, 2, 105, 98, 100, 100, 0, 2),
  ('MSFT', '2025-11-24 10:02:00', 49, -1, -2, 52, 48, 50, 50, 0, 3);

BEGIN;
SET LOCAL ROLE stocks_stream_anon;
SELECT set_config('request.jwt.claims', '{"role":"stocks_stream_anon"}', true) IS NOT NULL AS claims_set;
SELECT set_config('request.headers', '{"accept":"application/json"}', true) IS NOT NULL AS headers_set;
-- GET /candles?symbol=eq.AAPL&interval=eq.1m&bucket_start=gte.2025-11-24T10:00:00Z&order=bucket_start&limit=10
SELECT symbol, interval, bucket_start, open, high, low, close, volume, vwap, sample_count
  FROM api.candles WHERE symbol = 'AAPL' AND interval = '1m' AND bucket_start >= '2025-11-24 10:00'
 ORDER BY bucket_start LIMIT 10;
-- GET /daily_summary?symbol=eq.AAPL&order=day.desc
SELECT * FROM api.daily_summary WHERE symbol = 'AAPL' ORDER BY day DESC;
-- GET /top_movers?order=gain_rank
SELECT * FROM api.top_movers ORDER BY gain_rank;
-- GET /latest_quotes
SELECT symbol, quote_time, price FROM api.latest_quotes ORDER BY symbol;
-- GET /pipeline_health (the earlier suites' pipeline and sources; no worker runs here)
SELECT kind, name, running, state, objects_pending_load FROM api.pipeline_health ORDER BY kind, name;
COMMIT;

-- refused to the anonymous role: the tables behind the views, every
-- stocks_stream function, the secret settings, and any write through api
CREATE FUNCTION pg_temp.anon_error_of(stmt text, OUT code text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL ROLE stocks_stream_anon;
    EXECUTE stmt;
    message := 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END;
$$;
SELECT t.n, e.* FROM (VALUES
  (1, $q$SELECT * FROM stocks_stream.candles$q$),
  (2, $q$SELECT * FROM stocks_stream.quotes$q$),
  (3, $q$SELECT * FROM stocks_stream.manifest$q$),
  (4, $q$SELECT * FROM stocks_stream.pipelines$q$),
  (5, $q$SELECT * FROM stocks_stream.load_bronze()$q$),
  (6, $q$SELECT stocks_stream.refresh_gold()$q$),
  (7, $q$SELECT stocks_stream.create_pipeline('x', 'y', 'zzz')$q$),
  (8, $q$SELECT * FROM stocks_stream.worker_status$q$),
  (9, $q$SELECT current_setting('stocks_stream.s3_secret_key')$q$),
  (10, $q$SELECT current_setting('stocks_stream.finnhub_api_key')$q$),
  (11, $q$INSERT INTO api.candles (symbol, interval, bucket_start, open, high, low, close, sample_count) VALUES ('X', '1m', now(), 1, 1, 1, 1, 1)$q$),
  (12, $q$UPDATE api.daily_summary SET close = 0$q$),
  (13, $q$DELETE FROM api.candles$q$),
  (14, $q$SELECT stocks_stream.worker_status_internal('archive')$q$)
) AS t(n, stmt), LATERAL pg_temp.anon_error_of(t.stmt) e ORDER BY t.n;

-- the anonymous role's statement timeout
SELECT rolname, rolconfig FROM pg_roles WHERE rolname = 'stocks_stream_anon';

-- PostgREST's filters reach the tables' indexes through the views: with
-- sequential scans off, each plan is an index scan with the filter in its
-- index condition (a view that aggregated first could not do that)
CREATE FUNCTION pg_temp.filters_use_index(query text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    line text;
    seq boolean := false;
    cond boolean := false;
BEGIN
    SET LOCAL enable_seqscan = off;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        seq := seq OR line ~ 'Seq Scan';
        cond := cond OR line ~ 'Index Cond: .*(symbol|interval)"? = ';
    END LOOP;
    RETURN cond AND NOT seq;
END;
$$;
SELECT pg_temp.filters_use_index($q$SELECT * FROM api.candles WHERE symbol = 'AAPL' AND interval = '1m'
    AND bucket_start >= '2025-11-24' ORDER BY bucket_start LIMIT 10$q$) AS candles_by_symbol;
SELECT pg_temp.filters_use_index($q$SELECT * FROM api.daily_summary WHERE symbol = 'AAPL' AND day >= '2025-11-01'$q$) AS daily_by_symbol;
SELECT pg_temp.filters_use_index($q$SELECT * FROM api.latest_quotes WHERE symbol = 'AAPL'$q$) AS latest_quote_by_symbol;
-- every view and column is described for the OpenAPI document
SELECT c.relname, count(*) FILTER (WHERE col_description(c.oid, a.attnum) IS NULL) AS undocumented_columns,
       obj_description(c.oid, 'pg_class') IS NOT NULL AS view_documented
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE n.nspname = 'api' AND c.relkind = 'v' GROUP BY c.oid, c.relname ORDER BY c.relname;
-- and every function and type (/rpc/candle_series and its rows)
SELECT p.oid::regprocedure AS function, obj_description(p.oid, 'pg_proc') IS NOT NULL AS documented
  FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace ORDER BY 1::text;
SELECT t.typname, obj_description(t.oid, 'pg_type') IS NOT NULL AS documented,
       count(*) FILTER (WHERE col_description(t.typrelid, a.attnum) IS NULL) AS undocumented_columns
  FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0
 WHERE t.typnamespace = 'api'::regnamespace AND t.typtype = 'c'
   AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'v')
 GROUP BY t.oid, t.typname ORDER BY t.typname;
RESET TIME ZONE;
