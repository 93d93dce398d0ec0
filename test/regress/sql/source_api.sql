-- The ingest source SQL API and its argument errors.
SELECT name, kind, symbols, topic, poll_interval_ms, options, running, generation
  FROM stocks_stream.create_source('sim', 'simulator', ARRAY['AAPL', 'MSFT'], 'market',
       options => '{"seed": 7, "rate": 100}');
SELECT name, kind, symbols, poll_interval_ms
  FROM stocks_stream.create_source('quotes', 'finnhub_quotes', ARRAY['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'TSLA'],
       'quotes', poll_interval_ms => 5000);
SELECT name, kind, symbols
  FROM stocks_stream.create_source('trades', 'finnhub_trades', ARRAY['AAPL', 'BINANCE:BTCUSDT'], 'trades');
-- no launcher serves this database: start refuses, with a hint
SELECT name, running FROM stocks_stream.start_source('sim');
SELECT name, running FROM stocks_stream.stop_source('sim');
SELECT name, symbols, options, generation
  FROM stocks_stream.alter_source('sim', symbols => ARRAY['NVDA'], options => '{"seed": 9}');

CREATE FUNCTION pg_temp.error_of(stmt text, OUT code text, OUT message text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    message := 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END;
$$;
SELECT t.n, e.* FROM (VALUES
  (1, $q$SELECT stocks_stream.create_source('sim', 'simulator', ARRAY['AAPL'], 'market')$q$),
  (2, $q$SELECT stocks_stream.create_source('x', 'bloomberg', ARRAY['AAPL'], 'market')$q$),
  (3, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY[]::text[], 'market')$q$),
  (4, $q$SELECT stocks_stream.create_source('x', 'simulator', NULL, 'market')$q$),
  (5, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['aapl'], 'market')$q$),
  (6, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL', NULL], 'market')$q$),
  (7, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL', 'AAPL'], 'market')$q$),
  (8, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL'], 'bad topic')$q$),
  (9, $q$SELECT stocks_stream.create_source('x', 'finnhub_quotes', ARRAY['AAPL', 'MSFT'], 'q', poll_interval_ms => 1000)$q$),
  (10, $q$SELECT stocks_stream.create_source('x', 'finnhub_quotes', ARRAY['AAPL'], 'q', poll_interval_ms => 10)$q$),
  (11, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL'], 'q', options => '{"speed": 1}')$q$),
  (12, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL'], 'q', options => '{"rate": -1}')$q$),
  (13, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL'], 'q', options => '{"seed": 1.5}')$q$),
  (14, $q$SELECT stocks_stream.create_source('x', 'finnhub_quotes', ARRAY['AAPL'], 'q', options => '{"skip_unchanged": "yes"}')$q$),
  (15, $q$SELECT stocks_stream.create_source('x', 'finnhub_quotes', ARRAY['AAPL'], 'q', options => '{"calls_per_minute": 5000}')$q$),
  (16, $q$SELECT stocks_stream.create_source('x', 'finnhub_trades', ARRAY['AAPL'], 'q', options => '{"rate": 1}')$q$),
  (17, $q$SELECT stocks_stream.create_source('x', 'simulator', ARRAY['AAPL'], 'q', options => '[1]')$q$),
  (18, $q$SELECT stocks_stream.alter_source('quotes', poll_interval_ms => 2000)$q$),
  (19, $q$SELECT stocks_stream.alter_source('nope', topic => 'x')$q$),
  (20, $q$SELECT stocks_stream.start_source('nope')$q$),
  (21, $q$SELECT stocks_stream.drop_source('nope')$q$),
  (22, $q$SELECT stocks_stream.create_source('Bad', 'simulator', ARRAY['AAPL'], 'q')$q$)
) AS t(n, stmt), LATERAL pg_temp.error_of(t.stmt) e ORDER BY t.n;

-- failed calls changed nothing; a faster budget makes a short interval valid
SELECT name, poll_interval_ms, generation FROM stocks_stream.sources ORDER BY name;
SELECT name, poll_interval_ms, options
  FROM stocks_stream.alter_source('quotes', poll_interval_ms => 2000, options => '{"calls_per_minute": 150}');
SELECT stocks_stream.drop_source('trades');
SELECT name FROM stocks_stream.sources ORDER BY name;
SELECT count(*) AS running_sources FROM stocks_stream.source_status;
