-- Settings: defaults, and secrets hidden from ordinary users.
SELECT name, setting, context FROM pg_settings
 WHERE name LIKE 'stocks_stream.%' AND name IN
   ('stocks_stream.s3_path_style', 'stocks_stream.s3_region', 'stocks_stream.max_workers',
    'stocks_stream.launcher_naptime', 'stocks_stream.retry_max_backoff')
 ORDER BY name;

-- secret settings never appear in pg_settings (nor SHOW ALL), even for superusers
SELECT name FROM pg_settings
 WHERE name IN ('stocks_stream.s3_secret_key', 'stocks_stream.s3_access_key',
                'stocks_stream.kafka_properties');

-- a superuser can read them (the value itself is not printed here)
SELECT current_setting('stocks_stream.s3_secret_key') IS NOT NULL AS superuser_can_read;

-- an ordinary user can neither read nor set them
CREATE ROLE stocks_stream_settings_user LOGIN;
SET ROLE stocks_stream_settings_user;
SHOW stocks_stream.s3_secret_key;
SHOW stocks_stream.s3_access_key;
SHOW stocks_stream.kafka_properties;
SELECT current_setting('stocks_stream.s3_secret_key');
SELECT count(*) FROM pg_settings WHERE name LIKE 'stocks_stream.s3_%key';
SET stocks_stream.s3_secret_key = 'x';
-- non-secret settings stay visible
SHOW stocks_stream.s3_region;
RESET ROLE;
DROP ROLE stocks_stream_settings_user;

-- unknown settings under the reserved prefix are refused
SET stocks_stream.no_such_setting = 1;
