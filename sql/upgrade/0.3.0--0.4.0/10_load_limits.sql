-- ---------------------------------------------------------------------------
-- Loads under outside bytes (issue 21).  An object that keeps failing is
-- retried with backoff (stocks_stream.load_retry_backoff) and left alone
-- after stocks_stream.load_max_attempts: pipeline_health counts those,
-- retry_failed_objects() makes them pending again.  Listing marks never lie
-- ahead of the current hour (a folder dt=9999-12-31 made one before).
-- ---------------------------------------------------------------------------

UPDATE stocks_stream.listing_marks
   SET last_hour = date_trunc('hour', now() AT TIME ZONE 'UTC')
 WHERE last_hour > date_trunc('hour', now() AT TIME ZONE 'UTC');

CREATE FUNCTION stocks_stream.retry_failed_objects(pipeline text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    WITH retried AS (
        UPDATE stocks_stream.manifest m
           SET load_attempts = 0
         WHERE m.loaded_at IS NULL AND m.load_error IS NOT NULL
           AND (retry_failed_objects.pipeline IS NULL OR m.pipeline = retry_failed_objects.pipeline)
        RETURNING 1)
    SELECT count(*) FROM retried
$$;
COMMENT ON FUNCTION stocks_stream.retry_failed_objects(text) IS
    'Makes the objects whose loads failed (of one pipeline, or all) pending again at once, those past stocks_stream.load_max_attempts included; returns how many.';
REVOKE ALL ON FUNCTION stocks_stream.retry_failed_objects(text) FROM PUBLIC;

-- ETags read from listings before 0.4.0 kept MinIO's &#34; for their quotes
-- (numeric entities were not decoded); load_bronze() now compares the
-- recorded ETag with the GET's, so they are stored as a GET gives them.
UPDATE stocks_stream.manifest
   SET etag = replace(etag, '&#34;', '')
 WHERE etag LIKE '&#34;%';
