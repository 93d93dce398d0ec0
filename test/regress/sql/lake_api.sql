-- Retention policies of the lake (docs/lake.md): argument checks, the
-- policy view, the settings of tiering.  No S3 here: tier_to_lake() with
-- nothing due does nothing.
\set VERBOSITY default
SELECT stocks_stream.set_lake_retention('gold', 7, 'market-lake');
SELECT stocks_stream.set_lake_retention(NULL, 7, 'market-lake');
SELECT stocks_stream.set_lake_retention('trades', 0, 'market-lake');
SELECT stocks_stream.set_lake_retention('trades', NULL, 'market-lake');
SELECT stocks_stream.set_lake_retention('trades', 36501, 'market-lake');
SELECT stocks_stream.set_lake_retention('trades', 7, 'Market_Lake');
SELECT stocks_stream.set_lake_retention('trades', 7, '192.168.1.1');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', '/lake');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', 'lake/');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', 'a//b');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', 'a/../b');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', 'a b');
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake', '');
SELECT stocks_stream.drop_lake_retention('gold');
\set VERBOSITY terse

-- set, changed, shown, dropped (nothing due: the suites' days are recent)
SELECT stocks_stream.set_lake_retention('trades', 7, 'market-lake');
SELECT stocks_stream.set_lake_retention('trades', 36500, 'market-lake', 'cold/silver');
SELECT stocks_stream.set_lake_retention('quotes', 36000, 'market-lake');
SELECT table_name, hot_days, bucket, prefix,
       tiers_through = (now() AT TIME ZONE 'UTC')::date - hot_days AS tiers_through_ok
  FROM stocks_stream.lake_policies ORDER BY table_name;
CALL stocks_stream.tier_to_lake();
CALL stocks_stream.tier_to_lake(0);
SELECT stocks_stream.drop_lake_retention('trades');
SELECT stocks_stream.drop_lake_retention('trades');
SELECT stocks_stream.drop_lake_retention('quotes');
SELECT count(*) FROM stocks_stream.lake_retention;

-- the settings: bounded, superuser-only, the crash point hidden
SELECT name, setting, unit, min_val, max_val, context FROM pg_settings
 WHERE name IN ('stocks_stream.lake_row_group_rows', 'stocks_stream.lake_object_size',
                'stocks_stream.lake_sort_mem') ORDER BY name;
-- (the error's text names the range in units from PostgreSQL 18 on: the
-- SQLSTATE is what all versions share)
DO $$
BEGIN
    PERFORM set_config('stocks_stream.lake_object_size', '128MB', false);
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'lake_object_size = 128MB refused: %', SQLSTATE;
END;
$$;
DO $$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['32kB', '2GB'] LOOP
        BEGIN
            PERFORM set_config('stocks_stream.lake_sort_mem', v, false);
            RAISE NOTICE 'lake_sort_mem = % taken', v;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE NOTICE 'lake_sort_mem = % refused: %', v, SQLSTATE;
        END;
    END LOOP;
END;
$$;
SET stocks_stream.lake_row_group_rows = 10;
SELECT count(*) AS crash_point_shown FROM pg_settings WHERE name = 'stocks_stream.test_crash_point';
CREATE ROLE stocks_stream_lake_user LOGIN;
SET ROLE stocks_stream_lake_user;
SET stocks_stream.test_crash_point = 'frozen';
SET stocks_stream.lake_object_size = '1MB';
SET stocks_stream.lake_sort_mem = '1MB';
RESET ROLE;
DROP ROLE stocks_stream_lake_user;
