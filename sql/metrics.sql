-- stocks_stream: the Prometheus metrics (docs/metrics.md).  One view per
-- query of deploy/prometheus/queries.yaml, which prometheus-postgres-exporter
-- runs as stocks_stream_exporter; the exporter names each metric
-- <query>_<column>, so the columns here carry the metrics' names.  The
-- roles that read them (stocks_stream_metrics, stocks_stream_exporter) and
-- their grants are in roles.sql, which runs after this file.

-- The workers' counters and the archive workers' latency histograms (the
-- other kind's columns are NULL; core/worker_status.c names the columns;
-- the latency columns are in the
-- shape the exporter reads a HISTOGRAM in: bounds, cumulative counts, sum,
-- count).  No error texts: stocks_stream_metrics may call it.
CREATE OR REPLACE FUNCTION stocks_stream.worker_metrics_internal(
    kind text,
    OUT owner text, OUT owner_id integer, OUT worker integer,
    OUT messages_read bigint, OUT messages_archived bigint, OUT bytes_archived bigint,
    OUT objects_written bigint, OUT kafka_errors bigint, OUT s3_errors bigint,
    OUT upload_seconds double precision[], OUT upload_seconds_bucket bigint[],
    OUT upload_seconds_sum double precision, OUT upload_seconds_count bigint,
    OUT flush_seconds double precision[], OUT flush_seconds_bucket bigint[],
    OUT flush_seconds_sum double precision, OUT flush_seconds_count bigint,
    OUT messages_produced bigint, OUT delivery_failures bigint, OUT api_calls bigint,
    OUT rate_limited_429 bigint, OUT reconnects bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_worker_status_v2' LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream.worker_metrics_internal IS
    'One row per running worker of a kind: the counters and latency histograms the metrics show (no states, no error texts).';

-- Kafka Connect's sink task metrics, one series per archive worker (task).
CREATE OR REPLACE VIEW stocks_stream.metrics_sink AS
    SELECT w.owner AS pipeline, w.worker::text AS worker,
           w.messages_read AS record_read_total, w.messages_archived AS record_send_total,
           w.bytes_archived AS record_send_bytes_total, w.objects_written AS objects_written_total,
           w.kafka_errors AS kafka_errors_total, w.s3_errors AS s3_errors_total,
           w.upload_seconds, w.upload_seconds_bucket, w.upload_seconds_sum, w.upload_seconds_count,
           w.flush_seconds, w.flush_seconds_bucket, w.flush_seconds_sum, w.flush_seconds_count
      FROM stocks_stream.worker_metrics_internal('archive') w
      JOIN stocks_stream.pipelines p ON p.pipeline_id = w.owner_id AND p.name = w.owner;
COMMENT ON VIEW stocks_stream.metrics_sink IS
    'Metrics stocks_stream_sink_*: per archive worker, messages read from Kafka and archived, bytes, objects, Kafka and S3 errors, upload (PUT) and flush latency histograms; counted since the worker started.';

-- Kafka Connect's connector metrics: the workers a pipeline or source
-- should run, and those running.
CREATE OR REPLACE VIEW stocks_stream.metrics_connector AS
    SELECT 'archive'::text AS kind, p.name AS connector,
           (SELECT count(*) FROM stocks_stream.worker_metrics_internal('archive') w
             WHERE w.owner_id = p.pipeline_id) AS running_tasks,
           CASE WHEN p.running THEN p.workers ELSE 0 END::bigint AS tasks
      FROM stocks_stream.pipelines p
    UNION ALL
    SELECT 'ingest', s.name,
           (SELECT count(*) FROM stocks_stream.worker_metrics_internal('ingest') w
             WHERE w.owner_id = s.source_id),
           CASE WHEN s.running THEN 1 ELSE 0 END
      FROM stocks_stream.sources s;
COMMENT ON VIEW stocks_stream.metrics_connector IS
    'Metrics stocks_stream_connector_*: per pipeline and source, the workers it should run (0 when stopped) and those running.';

-- The consumer's records-lag, per partition, as stocks_stream.consumer_lag
-- shows it (partitions whose lag Kafka could not tell are left out).
CREATE OR REPLACE VIEW stocks_stream.metrics_consumer AS
    SELECT pipeline, topic, partition::text AS partition,
           lag AS records_lag, coalesce(stored_next_offset, low_watermark) AS committed_offset,
           high_watermark AS log_end_offset
      FROM stocks_stream.consumer_lag_internal()
     WHERE lag IS NOT NULL;
COMMENT ON VIEW stocks_stream.metrics_consumer IS
    'Metrics stocks_stream_consumer_*: per pipeline partition, the lag of stocks_stream.consumer_lag, the next offset to archive (the stored one, else the low watermark) and the high watermark.';

-- Each ingest source's counters, as stocks_stream.source_status shows them.
CREATE OR REPLACE VIEW stocks_stream.metrics_source AS
    SELECT w.owner AS source, s.kind,
           w.messages_produced AS messages_total, w.delivery_failures AS delivery_failures_total,
           w.api_calls AS api_calls_total, w.rate_limited_429 AS api_rate_limited_total,
           w.reconnects AS reconnects_total
      FROM stocks_stream.worker_metrics_internal('ingest') w
      JOIN stocks_stream.sources s ON s.source_id = w.owner_id AND s.name = w.owner;
COMMENT ON VIEW stocks_stream.metrics_source IS
    'Metrics stocks_stream_source_*: per running ingest source, messages produced (acknowledged by Kafka), delivery failures, Finnhub API calls and 429s, reconnects.';

-- Bronze -> silver, per pipeline: what the manifest and the quarantine hold
-- (a full read of both at each scrape: counts, not a log).
CREATE OR REPLACE VIEW stocks_stream.metrics_loader AS
    WITH objects AS (
        SELECT m.pipeline,
               count(*) FILTER (WHERE m.loaded_at IS NOT NULL) AS objects_loaded_total,
               coalesce(sum(m.message_count) FILTER (WHERE m.loaded_at IS NOT NULL), 0) AS records_loaded_total,
               count(*) FILTER (WHERE m.loaded_at IS NULL) AS objects_pending,
               count(*) FILTER (WHERE m.load_error IS NOT NULL) AS objects_failed
          FROM stocks_stream.manifest m
         GROUP BY m.pipeline),
    quarantined AS (
        SELECT m.pipeline, count(*) AS records_quarantined_total
          FROM stocks_stream.quarantine q
          JOIN stocks_stream.manifest m ON m.bucket = q.bucket AND m.object_key = q.object_key
         GROUP BY m.pipeline)
    SELECT o.pipeline, o.objects_loaded_total, o.records_loaded_total, o.objects_pending, o.objects_failed,
           coalesce(q.records_quarantined_total, 0) AS records_quarantined_total
      FROM objects o
      LEFT JOIN quarantined q USING (pipeline);
COMMENT ON VIEW stocks_stream.metrics_loader IS
    'Metrics stocks_stream_loader_*: per pipeline, objects loaded into silver and the records (lines) they held, objects pending and failed, records quarantined.';

-- Offsets skipped (stocks_stream.archive_gaps), per pipeline, topic and reason.
CREATE OR REPLACE VIEW stocks_stream.metrics_gaps AS
    SELECT pipeline, topic, reason, sum(to_offset - from_offset + 1)::bigint AS skipped_offsets_total
      FROM stocks_stream.archive_gaps
     GROUP BY pipeline, topic, reason;
COMMENT ON VIEW stocks_stream.metrics_gaps IS
    'Metrics stocks_stream_gaps_*: offsets an archive pipeline skipped, per pipeline, topic and reason.';

-- Produce-to-silver freshness: how old the newest row of each silver table
-- is, by its event time (the quote's or trade's time, stamped when it was
-- produced).  Read per symbol through the (symbol, time) index of the last
-- two days' partitions, not by a scan.
CREATE OR REPLACE VIEW stocks_stream.metrics_silver AS
    WITH symbols AS (
        SELECT symbol FROM stocks_stream.latest_quotes
        UNION
        SELECT unnest(symbols) FROM stocks_stream.sources),
    newest AS (
        SELECT 'quotes'::text AS "table",
               (SELECT max(q.newest) FROM symbols s, LATERAL (
                    SELECT max(quote_time) AS newest FROM stocks_stream.quotes
                     WHERE symbol = s.symbol AND quote_time > now() - interval '2 days') q) AS newest
        UNION ALL
        SELECT 'trades',
               (SELECT max(t.newest) FROM symbols s, LATERAL (
                    SELECT max(trade_time) AS newest FROM stocks_stream.trades
                     WHERE symbol = s.symbol AND trade_time > now() - interval '2 days') t))
    SELECT "table", extract(epoch FROM now() - newest)::double precision AS freshness_seconds
      FROM newest
     WHERE newest IS NOT NULL;
COMMENT ON VIEW stocks_stream.metrics_silver IS
    'Metrics stocks_stream_silver_*: per silver table, the age in seconds of its newest row by event time (rows of the last two days only).';

-- How long refresh_gold() takes: a histogram in stocks_stream.gold_refresh_seconds
-- (pre_install.sql), which each refresh adds itself to at its end.
CREATE OR REPLACE FUNCTION stocks_stream._gold_refresh_bounds()
RETURNS double precision[] LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '{0.01,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60}'::double precision[]
$$;
COMMENT ON FUNCTION stocks_stream._gold_refresh_bounds IS
    'The upper bounds, in seconds, of the buckets of stocks_stream.gold_refresh_seconds.';

-- Called by refresh_gold() (SECURITY DEFINER), so with its owner's rights.
CREATE OR REPLACE FUNCTION stocks_stream._observe_gold_refresh(took interval)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bounds double precision[] := stocks_stream._gold_refresh_bounds();
    secs double precision := greatest(extract(epoch FROM took)::double precision, 0);
    i integer := 1;
BEGIN
    IF took IS NULL THEN
        RAISE EXCEPTION 'stocks_stream._observe_gold_refresh: took must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    WHILE i <= cardinality(bounds) AND secs > bounds[i] LOOP
        i := i + 1;
    END LOOP;
    INSERT INTO stocks_stream.gold_refresh_seconds (bucket)
    VALUES (array_fill(0::bigint, ARRAY[cardinality(bounds) + 1]))
    ON CONFLICT (one_row) DO NOTHING;
    UPDATE stocks_stream.gold_refresh_seconds
       SET bucket[i] = bucket[i] + 1, sum = sum + secs, count = count + 1;
END;
$$;
COMMENT ON FUNCTION stocks_stream._observe_gold_refresh IS
    'Adds one refresh_gold() that took so long to stocks_stream.gold_refresh_seconds.';

CREATE OR REPLACE VIEW stocks_stream.metrics_gold AS
    SELECT stocks_stream._gold_refresh_bounds() AS refresh_seconds,
           ARRAY(SELECT sum(c) OVER (ORDER BY n)::bigint
                   FROM unnest(g.bucket[1:cardinality(stocks_stream._gold_refresh_bounds())])
                        WITH ORDINALITY u(c, n)
                  ORDER BY n) AS refresh_seconds_bucket,
           g.sum AS refresh_seconds_sum, g.count AS refresh_seconds_count
      FROM stocks_stream.gold_refresh_seconds g;
COMMENT ON VIEW stocks_stream.metrics_gold IS
    'Metrics stocks_stream_gold_*: a histogram of how long refresh_gold() took (none before the first refresh).';
