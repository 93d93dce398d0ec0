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

CREATE OR REPLACE VIEW api.pipeline_health AS
    SELECT 'archive'::text AS kind, p.name, p.running, w.state, w.messages,
           w.lag AS consumer_lag, w.last_activity, w.last_error_at,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.loaded_at IS NULL) AS objects_pending_load,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.load_error IS NOT NULL) AS objects_failed_load,
           (SELECT count(*) FROM stocks_stream.manifest m
             WHERE m.pipeline = p.name AND m.loaded_at IS NULL AND m.load_error IS NOT NULL
               AND m.load_attempts >= current_setting('stocks_stream.load_max_attempts')::int) AS objects_given_up
      FROM stocks_stream.pipelines p
      LEFT JOIN stocks_stream.api_worker_status('archive') w ON w.owner_id = p.pipeline_id AND w.owner = p.name
    UNION ALL
    SELECT 'source', s.name, s.running, w.state, w.messages, NULL, w.last_activity, w.last_error_at, NULL, NULL, NULL
      FROM stocks_stream.sources s
      LEFT JOIN stocks_stream.api_worker_status('ingest') w ON w.owner_id = s.source_id AND w.owner = s.name;
COMMENT ON COLUMN api.pipeline_health.objects_given_up IS
    'Archived objects whose loads failed stocks_stream.load_max_attempts times: no longer retried until stocks_stream.retry_failed_objects() is called.';
