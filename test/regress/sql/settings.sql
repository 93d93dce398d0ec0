-- Settings: defaults, and secrets that no setting holds.
SELECT name, setting, context FROM pg_settings
 WHERE name LIKE 'stocks_stream.%' AND name IN
   ('stocks_stream.s3_path_style', 'stocks_stream.s3_region', 'stocks_stream.max_workers',
    'stocks_stream.launcher_naptime', 'stocks_stream.retry_max_backoff',
    'stocks_stream.secrets_file', 'stocks_stream.min_event_year')
 ORDER BY name;

-- credentials are never settings (pg_read_all_settings members may read
-- every setting): the S3 and Finnhub keys live in the file secrets_file names
SELECT count(*) AS secret_settings FROM pg_settings
 WHERE name ~ '^stocks_stream\.(s3_access_key|s3_secret_key|finnhub_api_key)';
SET stocks_stream.s3_secret_key = 'x';

-- librdkafka pass-through properties stay superuser-only and out of SHOW ALL
SELECT name FROM pg_settings WHERE name = 'stocks_stream.kafka_properties';
CREATE ROLE stocks_stream_settings_user LOGIN;
SET ROLE stocks_stream_settings_user;
SHOW stocks_stream.kafka_properties;
-- non-secret settings stay visible
SHOW stocks_stream.s3_region;
RESET ROLE;
DROP ROLE stocks_stream_settings_user;

-- a monitoring role reads every setting, and finds no secret among them
CREATE ROLE stocks_stream_monitor LOGIN IN ROLE pg_monitor;
SET ROLE stocks_stream_monitor;
SELECT name, setting FROM pg_settings
 WHERE name LIKE 'stocks_stream.%' AND name ~ 'key|secret|password|token' ORDER BY name;
SHOW stocks_stream.secrets_file;
SELECT pg_read_file('stocks_stream.secrets');
RESET ROLE;
DROP ROLE stocks_stream_monitor;

-- unknown settings under the reserved prefix are refused
SET stocks_stream.no_such_setting = 1;
