-- stocks_stream: worker status (the C side is worker_status.c, which names
-- each field and counter once and fills the columns declared here by their
-- names), and the views of the archive and ingest workers and of the
-- consumer lag.  api.pipeline_health's view of it is in api.sql.

CREATE OR REPLACE FUNCTION stocks_stream.worker_status_internal(
    kind text,
    OUT owner text, OUT owner_id integer, OUT worker integer, OUT pid integer,
    OUT state text, OUT detail text,
    OUT messages_archived bigint, OUT bytes_archived bigint, OUT objects_written bigint,
    OUT lag bigint,
    OUT messages_produced bigint, OUT delivery_failures bigint, OUT api_calls bigint,
    OUT rate_limited_429 bigint, OUT zero_quotes_skipped bigint,
    OUT unchanged_quotes_skipped bigint, OUT reconnects bigint,
    OUT started_at timestamptz, OUT last_activity timestamptz,
    OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_worker_status_v2' LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.worker_status_internal IS
    'One row per running worker of a kind (archive or ingest): its slot and its counters; the counters of the other kind are NULL.';

CREATE OR REPLACE VIEW stocks_stream.worker_status AS
    SELECT w.owner AS pipeline, w.worker, w.pid, w.state, w.detail AS assigned_partitions,
           w.messages_archived, w.bytes_archived, w.objects_written, w.lag, w.started_at,
           w.last_activity AS last_flush, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('archive') w
      JOIN stocks_stream.pipelines p ON p.pipeline_id = w.owner_id AND p.name = w.owner
     ORDER BY w.owner, w.worker;
COMMENT ON VIEW stocks_stream.worker_status IS
    'One row per running archive worker of this database''s pipelines: state, assigned Kafka partitions, what it archived, and its last error.';

CREATE OR REPLACE FUNCTION stocks_stream.consumer_lag_internal(
    OUT pipeline text, OUT topic text, OUT partition integer, OUT stored_next_offset bigint,
    OUT low_watermark bigint, OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_consumer_lag' LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW stocks_stream.consumer_lag AS
    SELECT pipeline, topic, partition, stored_next_offset, high_watermark, lag
      FROM stocks_stream.consumer_lag_internal();
COMMENT ON VIEW stocks_stream.consumer_lag IS
    'Per pipeline partition: the next offset stored in Postgres, Kafka''s high watermark, and the messages not yet archived.';

CREATE OR REPLACE VIEW stocks_stream.source_status AS
    SELECT w.owner AS source, s.kind, w.pid, w.state, w.detail,
           w.messages_produced, w.delivery_failures, w.api_calls, w.rate_limited_429,
           w.zero_quotes_skipped, w.unchanged_quotes_skipped, w.reconnects, w.started_at,
           w.last_activity AS last_message_at, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('ingest') w
      JOIN stocks_stream.sources s ON s.source_id = w.owner_id AND s.name = w.owner
     ORDER BY w.owner;
COMMENT ON VIEW stocks_stream.source_status IS
    'One row per running ingest source: state, messages produced (acknowledged by Kafka), delivery failures, Finnhub API calls, 429s, zero and unchanged quotes skipped, WebSocket reconnects, last message time, last error.';
