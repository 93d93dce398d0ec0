-- The archive pipeline SQL API: create / alter / start / stop / drop, and
-- the errors a user gets for bad arguments.
SELECT name, topic, bucket, key_prefix, batch_max_messages, batch_max_bytes,
       batch_max_age_ms, gzip, workers, running, generation
  FROM stocks_stream.create_pipeline('quotes_archive', 'quotes', 'bronze-bucket');

SELECT name, key_prefix, batch_max_messages, gzip, workers
  FROM stocks_stream.create_pipeline('trades_archive', 'trades.v1', 'bronze-bucket',
       key_prefix => 'raw/trades', batch_max_messages => 5000, gzip => true, workers => 2);

-- start / stop flip the running flag the launcher follows; this database
-- (contrib_regression) is not the one stocks_stream.database names, so no
-- launcher would run the pipeline: start says so instead of doing nothing
SELECT name, running FROM stocks_stream.start_pipeline('quotes_archive');
SELECT name, running FROM stocks_stream.pipelines ORDER BY name;
SELECT name, running FROM stocks_stream.stop_pipeline('quotes_archive');

-- alter keeps what is not given and bumps the generation
SELECT name, topic, batch_max_age_ms, gzip, workers, generation
  FROM stocks_stream.alter_pipeline('quotes_archive', batch_max_age_ms => 500, workers => 3);

-- argument errors: SQLSTATE, message and hint of each
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
  (1, $q$SELECT stocks_stream.create_pipeline('quotes_archive', 'quotes', 'bronze-bucket')$q$),
  (2, $q$SELECT stocks_stream.create_pipeline('Bad Name', 'quotes', 'bronze-bucket')$q$),
  (3, $q$SELECT stocks_stream.create_pipeline(NULL, 'quotes', 'bronze-bucket')$q$),
  (4, $q$SELECT stocks_stream.create_pipeline('p', 'bad topic!', 'bronze-bucket')$q$),
  (5, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'Bronze_Bucket')$q$),
  (6, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'ab')$q$),
  (7, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', key_prefix => '/abs')$q$),
  (8, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', batch_max_messages => 0)$q$),
  (9, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', batch_max_bytes => 100)$q$),
  (10, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', batch_max_age_ms => -1)$q$),
  (11, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', gzip => NULL)$q$),
  (12, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', workers => 0)$q$),
  (13, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket', workers => 100000)$q$),
  (14, $q$SELECT stocks_stream.alter_pipeline('quotes_archive', batch_max_bytes => 0)$q$),
  (15, $q$SELECT stocks_stream.alter_pipeline('nope', workers => 2)$q$),
  (16, $q$SELECT stocks_stream.start_pipeline('nope')$q$),
  (17, $q$SELECT stocks_stream.stop_pipeline('nope')$q$),
  (18, $q$SELECT stocks_stream.drop_pipeline('nope')$q$),
  (19, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', NULL)$q$),
  (20, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', '192.168.5.4')$q$),
  (21, $q$SELECT stocks_stream.alter_pipeline('quotes_archive', bucket => 'bronze..bucket')$q$),
  (22, $q$SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze-bucket-')$q$),
  (23, $q$SELECT * FROM stocks_stream.load_bronze_prefix('Bronze_Bucket', '')$q$),
  (24, $q$SELECT * FROM stocks_stream.load_bronze_prefix('a', '')$q$)
) AS t(n, stmt), LATERAL pg_temp.error_of(t.stmt) e ORDER BY t.n;


-- a failed call changed nothing
SELECT name, batch_max_bytes, generation FROM stocks_stream.pipelines ORDER BY name;
SELECT count(*) AS pipelines_named_p FROM stocks_stream.pipelines WHERE name = 'p';

-- drop removes the pipeline and its stored offsets, keeps the manifest
INSERT INTO stocks_stream.offsets (pipeline_id, topic, partition, next_offset)
SELECT pipeline_id, topic, 0, 42 FROM stocks_stream.pipelines WHERE name = 'trades_archive';
INSERT INTO stocks_stream.manifest (pipeline, bucket, object_key, topic, partition,
    first_offset, last_offset, message_count, bytes, etag, compressed)
VALUES ('trades_archive', 'bronze-bucket', 'raw/trades/x.ndjson.gz', 'trades.v1', 0, 0, 41, 42, 1000, 'e', true);
SELECT stocks_stream.drop_pipeline('trades_archive');
SELECT name FROM stocks_stream.pipelines ORDER BY name;
SELECT count(*) AS offsets_left FROM stocks_stream.offsets;
SELECT count(*) AS manifest_rows FROM stocks_stream.manifest;

-- status views exist and are empty where no worker runs
SELECT count(*) AS workers FROM stocks_stream.worker_status
 WHERE pipeline = 'quotes_archive';

-- ordinary users cannot manage pipelines
CREATE ROLE stocks_stream_regress_user LOGIN;
SET ROLE stocks_stream_regress_user;
SELECT stocks_stream.create_pipeline('x', 'quotes', 'bronze-bucket');
SELECT count(*) FROM stocks_stream.pipelines;
RESET ROLE;
DROP ROLE stocks_stream_regress_user;
