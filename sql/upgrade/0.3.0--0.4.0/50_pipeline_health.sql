-- ---------------------------------------------------------------------------
-- api.pipeline_health as 0.4.0 serves it, in one place: 0.3.0's columns,
-- then the offsets skipped (archive_gaps, 30_gaps.sql) with the hint of what
-- to do when a worker holds, and the objects whose loads were given up
-- (stocks_stream.load_max_attempts, 10_load_limits.sql).
-- ---------------------------------------------------------------------------

CREATE OR REPLACE VIEW api.pipeline_health AS
    SELECT 'archive'::text AS kind, p.name, p.running, w.state, w.messages,
           w.lag AS consumer_lag, w.last_activity, w.last_error_at,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.loaded_at IS NULL) AS objects_pending_load,
           (SELECT count(*) FROM stocks_stream.manifest m WHERE m.pipeline = p.name AND m.load_error IS NOT NULL) AS objects_failed_load,
           g.gaps, g.offsets_skipped,
           CASE w.state
               WHEN 'topic re-created' THEN
                   format('The topic was deleted and created again; nothing of the new topic is archived until SELECT stocks_stream.reset_pipeline_offsets(%L, start => ''earliest'') (or ''latest'', or a timestamp).', p.name)
               WHEN 'offset beyond end' THEN
                   format('A stored offset is beyond its partition''s end (the log was truncated); SELECT stocks_stream.reset_pipeline_offsets(%L, start => ''earliest'') (or ''latest'', or a timestamp) sets where it resumes.', p.name)
           END AS hint,
           (SELECT count(*) FROM stocks_stream.manifest m
             WHERE m.pipeline = p.name AND m.loaded_at IS NULL AND m.load_error IS NOT NULL
               AND m.load_attempts >= current_setting('stocks_stream.load_max_attempts')::int) AS objects_given_up
      FROM stocks_stream.pipelines p
      LEFT JOIN stocks_stream.api_worker_status('archive') w ON w.owner_id = p.pipeline_id AND w.owner = p.name
      LEFT JOIN LATERAL (SELECT count(*) AS gaps, coalesce(sum(ag.to_offset - ag.from_offset + 1), 0)::bigint AS offsets_skipped
                           FROM stocks_stream.archive_gaps ag WHERE ag.pipeline = p.name) g ON true
    UNION ALL
    SELECT 'source', s.name, s.running, w.state, w.messages, NULL, w.last_activity, w.last_error_at, NULL, NULL,
           NULL, NULL, NULL, NULL
      FROM stocks_stream.sources s
      LEFT JOIN stocks_stream.api_worker_status('ingest') w ON w.owner_id = s.source_id AND w.owner = s.name;
COMMENT ON VIEW api.pipeline_health IS 'Archive pipelines (a row per worker) and ingest sources: running or not, worker state, messages handled, consumer lag, last activity and error time, objects waiting for, failing or given up on load, offsets skipped (archive_gaps), and what to do when a worker holds. Error texts and settings are not exposed.';
COMMENT ON COLUMN api.pipeline_health.gaps IS 'Archive pipelines: ranges of offsets skipped (api.archive_gaps).';
COMMENT ON COLUMN api.pipeline_health.offsets_skipped IS 'Archive pipelines: offsets skipped in all (api.archive_gaps).';
COMMENT ON COLUMN api.pipeline_health.hint IS 'What to do when the worker holds (a re-created topic, an offset beyond its partition''s end); null otherwise.';
COMMENT ON COLUMN api.pipeline_health.objects_given_up IS
    'Archived objects whose loads failed stocks_stream.load_max_attempts times: no longer retried until stocks_stream.retry_failed_objects() is called.';

NOTIFY pgrst, 'reload schema';
