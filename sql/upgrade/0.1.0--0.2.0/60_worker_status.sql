-- ---------------------------------------------------------------------------
-- Worker status with named counters.  The library names each field and
-- counter once (worker_status.c) and fills the columns declared here by
-- their names; the views select those names instead of counters[1..7].
-- The library still serves 0.1.0's bigint[] form (ss_worker_status) to a
-- database not updated yet.
-- ---------------------------------------------------------------------------

-- The new function takes the old one's name once the views read it, so
-- views of users that select from worker_status or source_status stay.
CREATE FUNCTION stocks_stream.worker_status_named(
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
REVOKE ALL ON FUNCTION stocks_stream.worker_status_named(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stocks_stream.worker_status_named(text) TO stocks_stream_api_owner;

CREATE OR REPLACE VIEW stocks_stream.worker_status AS
    SELECT w.owner AS pipeline, w.worker, w.pid, w.state, w.detail AS assigned_partitions,
           w.messages_archived, w.bytes_archived, w.objects_written, w.lag, w.started_at,
           w.last_activity AS last_flush, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_named('archive') w
      JOIN stocks_stream.pipelines p ON p.pipeline_id = w.owner_id AND p.name = w.owner
     ORDER BY w.owner, w.worker;

CREATE OR REPLACE VIEW stocks_stream.source_status AS
    SELECT w.owner AS source, s.kind, w.pid, w.state, w.detail,
           w.messages_produced, w.delivery_failures, w.api_calls, w.rate_limited_429,
           w.zero_quotes_skipped, w.unchanged_quotes_skipped, w.reconnects, w.started_at,
           w.last_activity AS last_message_at, w.last_error, w.last_error_at
      FROM stocks_stream.worker_status_named('ingest') w
      JOIN stocks_stream.sources s ON s.source_id = w.owner_id AND s.name = w.owner
     ORDER BY w.owner;

DROP FUNCTION stocks_stream.worker_status_internal(text);
ALTER FUNCTION stocks_stream.worker_status_named(text) RENAME TO worker_status_internal;
COMMENT ON FUNCTION stocks_stream.worker_status_internal IS
    'One row per running worker of a kind (archive or ingest): its slot and its counters; the counters of the other kind are NULL.';

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
