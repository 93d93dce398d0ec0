-- ---------------------------------------------------------------------------
-- Worker status with named counters.  The library names each field and
-- counter once (worker_status.c) and fills the columns declared here by
-- their names; the views select those names instead of counters[1..7].
-- The library still serves 0.1.0's bigint[] form (ss_worker_status) to a
-- database not updated yet.
-- ---------------------------------------------------------------------------

DROP VIEW stocks_stream.worker_status;
DROP VIEW stocks_stream.source_status;
DROP FUNCTION stocks_stream.worker_status_internal(text);

CREATE FUNCTION stocks_stream.worker_status_internal(
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
AS 'MODULE_PATHNAME', 'ss_worker_status_v2' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION stocks_stream.worker_status_internal IS
    'One row per running worker of a kind (archive or ingest): its slot and its counters; the counters of the other kind are NULL.';
REVOKE ALL ON FUNCTION stocks_stream.worker_status_internal(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stocks_stream.worker_status_internal(text) TO stocks_stream_api_owner;

CREATE VIEW stocks_stream.worker_status AS
    SELECT w.owner AS pipeline, w.worker, w.pid, w.state, w.detail AS assigned_partitions,
           w.messages_archived, w.bytes_archived, w.objects_written, w.lag, w.started_at,
           w.last_activity AS last_flush, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('archive') w
      JOIN stocks_stream.pipelines p ON p.pipeline_id = w.owner_id AND p.name = w.owner
     ORDER BY w.owner, w.worker;
COMMENT ON VIEW stocks_stream.worker_status IS
    'One row per running archive worker of this database''s pipelines: state, assigned Kafka partitions, what it archived, and its last error.';
REVOKE ALL ON stocks_stream.worker_status FROM PUBLIC;

CREATE VIEW stocks_stream.source_status AS
    SELECT w.owner AS source, s.kind, w.pid, w.state, w.detail,
           w.messages_produced, w.delivery_failures, w.api_calls, w.rate_limited_429,
           w.zero_quotes_skipped, w.unchanged_quotes_skipped, w.reconnects, w.started_at,
           w.last_activity AS last_message_at, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_internal('ingest') w
      JOIN stocks_stream.sources s ON s.source_id = w.owner_id AND s.name = w.owner
     ORDER BY w.owner;
COMMENT ON VIEW stocks_stream.source_status IS
    'One row per running ingest source: state, messages produced (acknowledged by Kafka), delivery failures, Finnhub API calls, 429s, zero and unchanged quotes skipped, WebSocket reconnects, last message time, last error.';
REVOKE ALL ON stocks_stream.source_status FROM PUBLIC;

-- api.pipeline_health's worker status, without the error texts (owner,
-- grants and SECURITY DEFINER kept from 0.1.0)
CREATE OR REPLACE FUNCTION stocks_stream.api_worker_status(kind text,
    OUT owner text, OUT owner_id integer, OUT state text, OUT messages bigint,
    OUT lag bigint, OUT last_activity timestamptz, OUT last_error_at timestamptz)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT owner, owner_id, state, coalesce(messages_archived, messages_produced), lag,
           last_activity, last_error_at
      FROM stocks_stream.worker_status_internal(kind)
$$;
