-- api.pipeline_health counts each pipeline's objects waiting for a load.
-- It read them through manifest_unloaded_idx (on object_id) and filtered
-- by pipeline, or, when the planner's statistics still counted a large
-- backfill's rows as unloaded, read the whole manifest.  An index of
-- exactly those rows by pipeline keeps the count an index probe.
CREATE INDEX manifest_pending_idx ON stocks_stream.manifest (pipeline) WHERE loaded_at IS NULL;
