-- ---------------------------------------------------------------------------
-- No offset is skipped in silence: the offsets an archive pipeline skips
-- (records deleted by retention before they were archived, a consumer
-- group offset moved ahead by something else, a re-created topic, a reset)
-- are recorded as gaps, counted in api.pipeline_health and served by
-- api.archive_gaps.  A re-created topic is told from the old one by Kafka's
-- topic id: its objects go to a topic folder of their own,
-- <topic>~<topic id>, so they never overwrite nor are confused with the old
-- topic's objects of the same offsets.
-- ---------------------------------------------------------------------------

CREATE TABLE stocks_stream.archive_gaps (
    gap_id       bigserial PRIMARY KEY,
    pipeline     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    from_offset  bigint NOT NULL,
    to_offset    bigint NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('retention', 'group offset moved', 'topic re-created', 'reset')),
    detail       text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (from_offset >= 0 AND to_offset >= from_offset)
);
CREATE INDEX archive_gaps_pipeline_idx ON stocks_stream.archive_gaps (pipeline, recorded_at);
COMMENT ON TABLE stocks_stream.archive_gaps IS
    'Offsets an archive pipeline skipped, each range recorded in the transaction that moved its stored offset past them: records deleted by retention before they were archived, a consumer group offset moved ahead by something else, a re-created topic, reset_pipeline_offsets().';
COMMENT ON COLUMN stocks_stream.archive_gaps.pipeline IS 'Pipeline name.';
COMMENT ON COLUMN stocks_stream.archive_gaps.topic IS 'Topic as the manifest and silver name it: the Kafka topic, or <topic>~<topic id> for a re-created topic.';
COMMENT ON COLUMN stocks_stream.archive_gaps.from_offset IS 'First offset skipped.';
COMMENT ON COLUMN stocks_stream.archive_gaps.to_offset IS 'Last offset skipped (inclusive).';
COMMENT ON COLUMN stocks_stream.archive_gaps.reason IS 'retention, group offset moved, topic re-created or reset.';
COMMENT ON COLUMN stocks_stream.archive_gaps.detail IS 'What the worker or the reset saw (watermarks, committed offset, start asked for).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.archive_gaps', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.archive_gaps_gap_id_seq', '');

CREATE TABLE stocks_stream.pipeline_topics (
    pipeline_id integer NOT NULL REFERENCES stocks_stream.pipelines ON DELETE CASCADE,
    topic       text NOT NULL,
    topic_id    text,
    key_topic   text NOT NULL,
    adopted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, topic)
);
COMMENT ON TABLE stocks_stream.pipeline_topics IS
    'Which incarnation of its topic a pipeline archives: Kafka''s topic id, and the topic folder of its object keys (the topic for the first one a pipeline sees, <topic>~<topic id> after a re-creation). A worker that finds another topic id holds its partitions until reset_pipeline_offsets().';
COMMENT ON COLUMN stocks_stream.pipeline_topics.topic_id IS 'Kafka''s topic id (as kafka-topics --describe prints it); NULL when the Kafka client could not tell.';
COMMENT ON COLUMN stocks_stream.pipeline_topics.key_topic IS 'The topic folder of the objects'' keys, also manifest.topic and silver''s source_topic.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipeline_topics', '');

-- ---------------------------------------------------------------------------
-- Where a pipeline starts again
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream.reset_pipeline_offsets(pipeline text, start text,
    OUT partition integer, OUT previous_offset bigint, OUT start_offset bigint, OUT offsets_skipped bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_reset_pipeline_offsets' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.reset_pipeline_offsets(text, text) IS
    'Set where a pipeline''s partitions start: ''earliest'', ''latest'' or a timestamp (the first record at or after it). Resumes a pipeline whose topic was re-created (its objects then go to <topic>~<topic id>/). Never goes back before what was archived of the same topic; every offset skipped is recorded in archive_gaps. The workers restart.';

CREATE FUNCTION stocks_stream.reset_pipeline_offsets(pipeline text, start timestamptz,
    OUT partition integer, OUT previous_offset bigint, OUT start_offset bigint, OUT offsets_skipped bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_reset_pipeline_offsets' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.reset_pipeline_offsets(text, timestamptz) IS
    'reset_pipeline_offsets(pipeline, start) from the first record at or after a time.';

REVOKE ALL ON FUNCTION stocks_stream.reset_pipeline_offsets(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stocks_stream.reset_pipeline_offsets(text, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Served through api
-- ---------------------------------------------------------------------------

GRANT SELECT ON stocks_stream.archive_gaps TO stocks_stream_api_owner;

CREATE VIEW api.archive_gaps AS
    SELECT pipeline, topic, partition, from_offset, to_offset, to_offset - from_offset + 1 AS offsets,
           reason, recorded_at
      FROM stocks_stream.archive_gaps;
COMMENT ON VIEW api.archive_gaps IS 'Offsets the archive skipped, with why and when: records deleted by retention before they were archived, a consumer group offset moved ahead, a re-created topic, a reset. Filter on pipeline, e.g. ?pipeline=eq.market_bronze&order=recorded_at.desc';
COMMENT ON COLUMN api.archive_gaps.pipeline IS 'Pipeline name.';
COMMENT ON COLUMN api.archive_gaps.topic IS 'Kafka topic, or <topic>~<topic id> for a re-created topic (as silver''s source_topic names it).';
COMMENT ON COLUMN api.archive_gaps.partition IS 'Kafka partition.';
COMMENT ON COLUMN api.archive_gaps.from_offset IS 'First offset skipped.';
COMMENT ON COLUMN api.archive_gaps.to_offset IS 'Last offset skipped (inclusive).';
COMMENT ON COLUMN api.archive_gaps.offsets IS 'Offsets skipped.';
COMMENT ON COLUMN api.archive_gaps.reason IS 'retention, group offset moved, topic re-created or reset.';
COMMENT ON COLUMN api.archive_gaps.recorded_at IS 'When the skip was recorded.';
ALTER VIEW api.archive_gaps OWNER TO stocks_stream_api_owner;
GRANT SELECT ON api.archive_gaps TO stocks_stream_anon;

NOTIFY pgrst, 'reload schema';
