-- Bronze line validation (each rule with its quarantine reason), the
-- loader's argument errors, daily partitions and retention.
SELECT n, (stocks_stream.check_bronze_line(line)).*
  FROM (VALUES
  (1, convert_to('{"c":187.23,"d":1.2,"dp":0.65,"h":188,"l":185.1,"o":186,"pc":186.03,"t":1764000000,"symbol":"AAPL","fetched_time":1764000001}', 'UTF8')),
  (2, convert_to('{"c":0.5,"d":null,"dp":null,"h":1,"l":0.1,"o":0.2,"pc":0.4,"t":1764000000,"symbol":"BINANCE:BTCUSDT"}', 'UTF8')),
  (3, convert_to('{"s":"AAPL","p":187.2,"t":1764000000123,"v":100,"c":["1","12"]}', 'UTF8')),
  (4, convert_to('{"s":"AAPL","p":187.2,"t":1764000000123,"v":0.25}', 'UTF8')),
  (5, convert_to('{"c": 187.2, "d": 1.1,', 'UTF8')),
  (6, convert_to('[1, 2, 3]', 'UTF8')),
  (7, convert_to('{"hello":"world"}', 'UTF8')),
  (8, convert_to('{"c":"abc","d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (9, convert_to('{"c":NaN,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (10, convert_to('{"c":1e999,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (11, convert_to('{"c":-5,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (12, convert_to('{"c":5,"d":1,"dp":1,"h":1,"l":2,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (13, convert_to('{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"pc":4,"t":0,"symbol":"AAPL"}', 'UTF8')),
  (14, convert_to('{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"pc":4,"t":4102444800,"symbol":"AAPL"}', 'UTF8')),
  (15, convert_to('{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"pc":4,"t":1764000000,"symbol":"aapl; drop"}', 'UTF8')),
  (16, convert_to('{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"t":1764000000,"symbol":"AAPL"}', 'UTF8')),
  (17, convert_to('{"s":"AAPL","p":1.5,"t":1764000000000,"v":-1}', 'UTF8')),
  (18, convert_to('{"s":"AAPL","p":0,"t":1764000000000,"v":1}', 'UTF8')),
  (19, convert_to('{"s":"AAPL","p":1.5,"t":1764000000000,"v":1,"c":"1"}', 'UTF8')),
  (20, '\x7b2273223a22c3282c2270223a312c2274223a312c2276223a317d'::bytea),
  (21, convert_to('{"blob":"' || repeat('x', 70000) || '"}', 'UTF8')),
  (22, convert_to('{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"pc":4,"t":1764000000,"symbol":"AAPL"}   ', 'UTF8'))
  ) AS t(n, line)
 ORDER BY n;

-- argument errors
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
  (1, $q$SELECT stocks_stream.load_bronze(max_objects => 0)$q$),
  (2, $q$SELECT stocks_stream.load_bronze('no_such_pipeline')$q$),
  (3, $q$SELECT stocks_stream.drop_silver_before(NULL)$q$),
  (4, $q$SELECT stocks_stream.ensure_day_partition(NULL)$q$)
) AS t(n, stmt), LATERAL pg_temp.error_of(t.stmt) e ORDER BY t.n;

-- nothing to load (the manifest rows of earlier suites name no real object)
DELETE FROM stocks_stream.manifest;
SELECT * FROM stocks_stream.load_bronze();

-- daily partitions and retention
SELECT stocks_stream.ensure_day_partition('2025-11-24');
SELECT stocks_stream.ensure_day_partition('2025-11-25');
SELECT stocks_stream.ensure_day_partition('2025-11-25');
INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition, source_offset)
VALUES ('AAPL', '2025-11-24 10:00:00+00', 1.5, 10, 't', 0, 1),
       ('AAPL', '2025-11-25 10:00:00+00', 1.6, 10, 't', 0, 2);
SELECT tableoid::regclass, count(*) FROM stocks_stream.trades GROUP BY 1 ORDER BY 1;
-- the same source twice is refused
INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition, source_offset)
VALUES ('AAPL', '2025-11-24 10:00:00+00', 1.5, 10, 't', 0, 1);
SELECT stocks_stream.drop_silver_before('2025-11-25') AS partitions_dropped;
SELECT tableoid::regclass, count(*) FROM stocks_stream.trades GROUP BY 1 ORDER BY 1;
