-- Gold: candle and VWAP math on hand-computed fixtures, late and
-- out-of-order data, and refresh idempotence.
SET TIME ZONE 'UTC';
SELECT stocks_stream.ensure_day_partition('2025-11-24');

-- AAPL trades in 10:00, out of order; one more in 10:01.  MSFT only quotes.
INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition, source_offset) VALUES
  ('AAPL', '2025-11-24 10:00:10', 100, 10, 'g', 0, 1),
  ('AAPL', '2025-11-24 10:00:50', 104, 30, 'g', 0, 2),
  ('AAPL', '2025-11-24 10:00:30',  98, 20, 'g', 0, 3),
  ('AAPL', '2025-11-24 10:01:05', 102, 40, 'g', 0, 4);
INSERT INTO stocks_stream.quotes (symbol, quote_time, price, change, change_pct, day_high, day_low, day_open, prev_close,
                                  source_topic, source_partition, source_offset) VALUES
  ('MSFT', '2025-11-24 10:00:05', 50, 0, 0, 60, 40, 45, 45, 'g', 1, 1),
  ('MSFT', '2025-11-24 10:00:40', 52, 0, 0, 60, 40, 45, 45, 'g', 1, 2),
  ('MSFT', '2025-11-24 10:00:20', 49, 0, 0, 60, 40, 45, 45, 'g', 1, 3);
-- what load_bronze() records for the rows it loads
INSERT INTO stocks_stream.gold_dirty VALUES
  ('AAPL', '2025-11-24 10:00'), ('AAPL', '2025-11-24 10:01'), ('MSFT', '2025-11-24 10:00');

SELECT stocks_stream.refresh_gold() AS candles_updated;
SELECT symbol, interval, bucket_start, open, high, low, close, volume, round(vwap::numeric, 6) AS vwap,
       sample_count, built_from
  FROM stocks_stream.candles ORDER BY symbol, interval, bucket_start;
SELECT symbol, day, open, close, high, low, change, round(change_pct::numeric, 6) AS change_pct,
       volatility, volume
  FROM stocks_stream.daily_summary ORDER BY symbol, day;

-- nothing new: idempotent, nothing recomputed
SELECT stocks_stream.refresh_gold() AS candles_updated;
SELECT count(*) AS candles FROM stocks_stream.candles;

-- a late trade, earlier than the open, changes the open and low of its buckets only
INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition, source_offset) VALUES
  ('AAPL', '2025-11-24 10:00:01', 90, 10, 'g', 0, 5);
INSERT INTO stocks_stream.gold_dirty VALUES ('AAPL', '2025-11-24 10:00');
SELECT stocks_stream.refresh_gold() AS candles_updated;
SELECT symbol, interval, bucket_start, open, high, low, close, volume, round(vwap::numeric, 6) AS vwap, sample_count
  FROM stocks_stream.candles WHERE symbol = 'AAPL' ORDER BY interval, bucket_start;
SELECT symbol, day, open, close, high, low, change, round(change_pct::numeric, 6) AS change_pct,
       round(volatility::numeric, 6) AS volatility, volume
  FROM stocks_stream.daily_summary WHERE symbol = 'AAPL';

-- a second minute of returns gives a volatility: closes 104 (10:00), 102 (10:01), 103 (10:02)
INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition, source_offset) VALUES
  ('AAPL', '2025-11-24 10:02:00', 103, 5, 'g', 0, 6);
INSERT INTO stocks_stream.gold_dirty VALUES ('AAPL', '2025-11-24 10:02');
SELECT stocks_stream.refresh_gold() AS candles_updated;
SELECT round(volatility::numeric, 8) AS volatility,
       round(stddev_samp(r)::numeric, 8) AS expected
  FROM stocks_stream.daily_summary,
       (VALUES (ln(102.0 / 104.0)), (ln(103.0 / 102.0))) v(r)
 WHERE symbol = 'AAPL' GROUP BY volatility;
RESET TIME ZONE;
