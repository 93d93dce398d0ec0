-- ---------------------------------------------------------------------------
-- Pipelines and sources run only in the database the launcher serves
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream._check_served_database(what text, p_name text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_database() <> current_setting('stocks_stream.database', true) THEN
        RAISE EXCEPTION 'cannot start % "%": no stocks_stream launcher serves database "%"',
            what, p_name, current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('The launcher runs the pipelines and sources of the database stocks_stream.database names: start it from that database, or set stocks_stream.database = ''%s'' in postgresql.conf and restart the server.',
                                current_database());
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.start_pipeline(name text)
RETURNS stocks_stream.pipelines LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p stocks_stream.pipelines := stocks_stream._pipeline(name);
BEGIN
    PERFORM stocks_stream._check_served_database('pipeline', p.name);
    UPDATE stocks_stream.pipelines SET running = true, updated_at = now()
     WHERE pipeline_id = p.pipeline_id RETURNING * INTO p;
    RETURN p;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream.start_source(name text)
RETURNS stocks_stream.sources LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s stocks_stream.sources := stocks_stream._source(name);
BEGIN
    PERFORM stocks_stream._check_served_database('source', s.name);
    UPDATE stocks_stream.sources SET running = true, updated_at = now()
     WHERE source_id = s.source_id RETURNING * INTO s;
    RETURN s;
END;
$$;

REVOKE ALL ON FUNCTION stocks_stream._check_served_database(text, text) FROM PUBLIC;

-- Installed (or updated) where no launcher runs: say so now, not when
-- nothing happens after start_pipeline().
DO $$
BEGIN
    IF current_database() <> current_setting('stocks_stream.database', true) THEN
        RAISE WARNING 'no stocks_stream launcher serves database "%"', current_database()
            USING DETAIL = format('stocks_stream.database is "%s": pipelines and sources of this database cannot run.',
                                  current_setting('stocks_stream.database', true)),
                  HINT = format('Set stocks_stream.database = ''%s'' in postgresql.conf and restart the server to run them here.',
                                current_database());
    END IF;
END;
$$;
