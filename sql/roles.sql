-- stocks_stream: roles, ownership and grants.  Every privilege of the
-- extension is given here, after the concern files made the objects; an
-- update runs this file again, so each statement leaves the same state
-- when it has run before.  docs/security.md describes the roles.
--
-- Roles (cluster-wide, so created only when missing; none can log in but
-- the authenticator: grant the group roles to your login roles):
--   stocks_stream_operator       runs the pipeline: manages pipelines and
--                                sources, loads bronze, refreshes gold,
--                                retries and resets; reads what the reader
--                                reads.  Writes the extension's tables only
--                                through its functions (SECURITY DEFINER),
--                                and exchanges / symbol_exchanges directly
--   stocks_stream_reader         reads silver, gold, status and the api
--   stocks_stream_api_owner      owns the api views; may read what they show
--   stocks_stream_anon           PostgREST's anonymous role: USAGE on api and
--                                SELECT on its views, nothing else
--   stocks_stream_authenticator  PostgREST logs in as it (set its password)
--   stocks_stream_metrics        reads the metrics views (sql/metrics.sql)
--   stocks_stream_exporter       the Prometheus exporter logs in as it, a
--                                member of stocks_stream_metrics (set its password)
DO $$
DECLARE
    group_role text;
BEGIN
    FOREACH group_role IN ARRAY ARRAY['stocks_stream_operator', 'stocks_stream_reader', 'stocks_stream_api_owner',
                                      'stocks_stream_anon', 'stocks_stream_metrics'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = group_role) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', group_role);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'stocks_stream_authenticator') THEN
        CREATE ROLE stocks_stream_authenticator LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'stocks_stream_exporter') THEN
        CREATE ROLE stocks_stream_exporter LOGIN;
    END IF;
END;
$$;
GRANT stocks_stream_anon TO stocks_stream_authenticator;
ALTER ROLE stocks_stream_anon SET statement_timeout = '5s';

-- Nothing in the schema stocks_stream is PUBLIC's: its tables and functions
-- are the extension owner's, and the roles below get what they need.
REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stocks_stream FROM PUBLIC;

-- The api owner reads what the api views show.
GRANT USAGE ON SCHEMA stocks_stream TO stocks_stream_api_owner;
GRANT SELECT ON stocks_stream.candles, stocks_stream.daily_summary, stocks_stream.quotes,
    stocks_stream.pipelines, stocks_stream.sources, stocks_stream.manifest TO stocks_stream_api_owner;
GRANT EXECUTE ON FUNCTION stocks_stream.worker_status_internal(text) TO stocks_stream_api_owner;
GRANT SELECT ON stocks_stream.latest_quotes, stocks_stream.exchanges, stocks_stream.symbol_exchanges
    TO stocks_stream_api_owner;
GRANT EXECUTE ON FUNCTION stocks_stream.symbol_exchange(text) TO stocks_stream_api_owner;
GRANT SELECT ON stocks_stream.archive_gaps TO stocks_stream_api_owner;
GRANT SELECT ON stocks_stream.lake_status TO stocks_stream_api_owner;

-- The api schema is the api owner's: its views run with its rights, and
-- api_worker_status() (SECURITY DEFINER) hands the anonymous role the
-- worker status without the error texts.
ALTER FUNCTION stocks_stream.api_worker_status(text) OWNER TO stocks_stream_api_owner;
ALTER VIEW api.candles OWNER TO stocks_stream_api_owner;
ALTER VIEW api.daily_summary OWNER TO stocks_stream_api_owner;
ALTER VIEW api.top_movers OWNER TO stocks_stream_api_owner;
ALTER VIEW api.latest_quotes OWNER TO stocks_stream_api_owner;
ALTER VIEW api.pipeline_health OWNER TO stocks_stream_api_owner;
ALTER VIEW api.daily_candles OWNER TO stocks_stream_api_owner;
ALTER VIEW api.symbol_volatility OWNER TO stocks_stream_api_owner;
ALTER VIEW api.exchanges OWNER TO stocks_stream_api_owner;
ALTER VIEW api.symbols OWNER TO stocks_stream_api_owner;
ALTER VIEW api.archive_gaps OWNER TO stocks_stream_api_owner;
ALTER VIEW api.lake_days OWNER TO stocks_stream_api_owner;
ALTER TYPE api.candle_point OWNER TO stocks_stream_api_owner;
ALTER FUNCTION api.candle_series(text, text, timestamptz, timestamptz, boolean) OWNER TO stocks_stream_api_owner;
REVOKE ALL ON FUNCTION api.candle_series(text, text, timestamptz, timestamptz, boolean) FROM PUBLIC;

-- The anonymous role reads the api and nothing else.
GRANT USAGE ON SCHEMA api TO stocks_stream_anon;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO stocks_stream_anon;
GRANT EXECUTE ON FUNCTION stocks_stream.api_worker_status(text) TO stocks_stream_anon;
GRANT EXECUTE ON FUNCTION stocks_stream.display_price(double precision), stocks_stream.display_pct(double precision),
    stocks_stream.display_amount(double precision) TO stocks_stream_anon, stocks_stream_api_owner;
GRANT EXECUTE ON FUNCTION api.candle_series(text, text, timestamptz, timestamptz, boolean) TO stocks_stream_anon;
-- The display functions (pure number formatting) stay executable by PUBLIC,
-- as 0.2.0 made them.
GRANT EXECUTE ON FUNCTION stocks_stream.display_price(double precision), stocks_stream.display_pct(double precision),
    stocks_stream.display_amount(double precision) TO PUBLIC;

-- ---------------------------------------------------------------------------
-- The reader: silver, gold, status and the api; it writes nothing and
-- calls nothing that changes anything.
-- ---------------------------------------------------------------------------
GRANT USAGE ON SCHEMA stocks_stream, api TO stocks_stream_reader;
GRANT SELECT ON stocks_stream.quotes, stocks_stream.trades, stocks_stream.quarantine,
    stocks_stream.candles, stocks_stream.daily_summary, stocks_stream.latest_quotes,
    stocks_stream.hour_returns, stocks_stream.gold_dirty, stocks_stream.gold_errors,
    stocks_stream.exchanges, stocks_stream.symbol_exchanges,
    stocks_stream.pipelines, stocks_stream.sources, stocks_stream.offsets, stocks_stream.pipeline_topics,
    stocks_stream.manifest, stocks_stream.archive_gaps, stocks_stream.listing_marks,
    stocks_stream.worker_status, stocks_stream.source_status, stocks_stream.consumer_lag,
    stocks_stream.lake_retention, stocks_stream.lake_days, stocks_stream.lake_objects,
    stocks_stream.lake_object_symbols, stocks_stream.lake_status, stocks_stream.lake_policies
    TO stocks_stream_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO stocks_stream_reader;
-- the status views' functions (the views run them with the caller's
-- rights) and the pure ones: none reads a setting or a file the caller
-- could choose
GRANT EXECUTE ON FUNCTION stocks_stream.worker_status_internal(text), stocks_stream.consumer_lag_internal(),
    stocks_stream.api_worker_status(text), stocks_stream.symbol_exchange(text),
    stocks_stream.symbol_is_valid(text), stocks_stream.parse_object_key(text),
    stocks_stream.check_bronze_line(bytea),
    api.candle_series(text, text, timestamptz, timestamptz, boolean)
    TO stocks_stream_reader;

-- ---------------------------------------------------------------------------
-- The operator: the reader's rights, and the functions that run the
-- pipeline.  Each is SECURITY DEFINER with a fixed search_path and checks
-- its arguments, so the operator changes the extension's tables only as
-- they allow; the exchanges are its configuration (their built-in rows
-- guarded by a trigger).
-- ---------------------------------------------------------------------------
GRANT stocks_stream_reader TO stocks_stream_operator;
GRANT EXECUTE ON FUNCTION
    stocks_stream.create_pipeline(text, text, text, text, integer, bigint, integer, boolean, integer, boolean, text),
    stocks_stream.alter_pipeline(text, text, text, text, integer, bigint, integer, boolean, integer, boolean, text),
    stocks_stream.start_pipeline(text), stocks_stream.stop_pipeline(text), stocks_stream.drop_pipeline(text),
    stocks_stream.reset_pipeline_offsets(text, text), stocks_stream.reset_pipeline_offsets(text, timestamptz),
    stocks_stream.create_source(text, text, text[], text, integer, jsonb),
    stocks_stream.alter_source(text, text[], text, integer, jsonb),
    stocks_stream.start_source(text), stocks_stream.stop_source(text), stocks_stream.drop_source(text),
    stocks_stream.load_bronze(text, integer), stocks_stream.load_bronze_prefix(text, text, interval),
    stocks_stream.retry_failed_objects(text), stocks_stream.drop_silver_before(date),
    stocks_stream.refresh_gold(), stocks_stream.refresh_gold(timestamptz, boolean),
    stocks_stream.rebuild_daily(text),
    stocks_stream.set_lake_retention(text, integer, text, text), stocks_stream.drop_lake_retention(text),
    stocks_stream._lake_next_step(timestamptz)
    TO stocks_stream_operator;
-- tier_to_lake() commits between its steps, so it cannot be SECURITY
-- DEFINER: the operator runs it, and it runs _lake_next_step() (above)
REVOKE ALL ON PROCEDURE stocks_stream.tier_to_lake(integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE stocks_stream.tier_to_lake(integer) TO stocks_stream_operator;
GRANT INSERT, UPDATE, DELETE ON stocks_stream.exchanges, stocks_stream.symbol_exchanges TO stocks_stream_operator;

-- The lake (docs/lake.md, "Iceberg tables"): the reader reads the Iceberg
-- catalog and the commit records, so Spark, Trino, DuckDB and pyiceberg
-- read the tables as any reader; the operator (the Airflow DAG runs
-- scripts/lake-commit as one) writes the catalog directly, as every Iceberg
-- JDBC catalog client does, and the commit records through lake_claim()
-- and lake_mark_commit().
REVOKE ALL ON ALL TABLES IN SCHEMA stocks_stream_lake FROM PUBLIC;
GRANT USAGE ON SCHEMA stocks_stream_lake TO stocks_stream_reader;
GRANT SELECT ON stocks_stream_lake.iceberg_tables, stocks_stream_lake.iceberg_namespace_properties,
    stocks_stream.lake_commits, stocks_stream.lake_commit_objects TO stocks_stream_reader;
GRANT INSERT, UPDATE, DELETE ON stocks_stream_lake.iceberg_tables, stocks_stream_lake.iceberg_namespace_properties
    TO stocks_stream_operator;
GRANT EXECUTE ON FUNCTION stocks_stream.lake_claim(text, text, integer), stocks_stream.lake_mark_commit(bigint, bigint)
    TO stocks_stream_operator;

-- The Prometheus exporter (docs/metrics.md)
GRANT stocks_stream_metrics TO stocks_stream_exporter;
-- a scrape asks Kafka for the watermarks (consumer_lag_internal waits 5 s at most)
ALTER ROLE stocks_stream_exporter SET statement_timeout = '15s';

-- stocks_stream_metrics reads the metrics views.  A view reads its tables
-- with its owner's rights but calls functions with the caller's, so it may
-- also call the three functions behind them (none reports an error text or
-- changes anything), and read the two tables consumer_lag_internal() reads.
REVOKE ALL ON FUNCTION stocks_stream.worker_metrics_internal(text), stocks_stream._observe_gold_refresh(interval),
    stocks_stream._gold_refresh_bounds() FROM PUBLIC;
GRANT USAGE ON SCHEMA stocks_stream TO stocks_stream_metrics;
GRANT SELECT ON stocks_stream.metrics_sink, stocks_stream.metrics_connector, stocks_stream.metrics_consumer,
    stocks_stream.metrics_source, stocks_stream.metrics_loader, stocks_stream.metrics_gaps,
    stocks_stream.metrics_silver, stocks_stream.metrics_gold TO stocks_stream_metrics;
GRANT EXECUTE ON FUNCTION stocks_stream.worker_metrics_internal(text), stocks_stream.consumer_lag_internal(),
    stocks_stream._gold_refresh_bounds() TO stocks_stream_metrics;
GRANT SELECT ON stocks_stream.pipelines, stocks_stream.offsets TO stocks_stream_metrics;
