-- stocks_stream: roles, ownership and grants.  Every privilege of the
-- extension is given here, after the concern files made the objects; an
-- update runs this file again, so each statement leaves the same state
-- when it has run before.
--
-- Roles (cluster-wide, so created only when missing):
--   stocks_stream_api_owner      owns the api views; may read what they show
--   stocks_stream_anon           PostgREST's anonymous role: USAGE on api and
--                                SELECT on its views, nothing else
--   stocks_stream_authenticator  PostgREST logs in as it (set its password)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_api_owner') THEN
        CREATE ROLE stocks_stream_api_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_anon') THEN
        CREATE ROLE stocks_stream_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stocks_stream_authenticator') THEN
        CREATE ROLE stocks_stream_authenticator LOGIN NOINHERIT;
    END IF;
END;
$$;
GRANT stocks_stream_anon TO stocks_stream_authenticator;
ALTER ROLE stocks_stream_anon SET statement_timeout = '5s';

-- Nothing in the schema stocks_stream is PUBLIC's: its tables and functions
-- are the superuser's (and the operator's once there is one).
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
