-- The login roles of the stack (scripts/stack runs this file as the
-- superuser after CREATE EXTENSION; so does the postgres container's first
-- start, docker/postgres-init.sh, which then sets their passwords).  Each
-- is a member of one of the group roles the extension makes
-- (docs/security.md); none is a superuser.  Re-runnable.
--
--   stocks_operator  scripts/run-pipeline and people: stocks_stream_operator
--   stocks_airflow   the Airflow DAG: stocks_stream_operator
--   stocks_dbt       dbt: reads the extension's tables (stocks_stream_reader)
--                    and owns the schemas it builds its models in
DO $$
DECLARE
    login text;
BEGIN
    FOREACH login IN ARRAY ARRAY['stocks_operator', 'stocks_airflow', 'stocks_dbt'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = login) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I LOGIN', login);
        END IF;
    END LOOP;
END;
$$;
GRANT stocks_stream_operator TO stocks_operator, stocks_airflow;
GRANT stocks_stream_reader TO stocks_dbt;

-- dbt's schemas (dbt_stocks: the target schema and its custom schemas) are
-- its own; ones a superuser's dbt run made before are handed over, with
-- what is in them
CREATE SCHEMA IF NOT EXISTS stocks_dbt AUTHORIZATION stocks_dbt;
CREATE SCHEMA IF NOT EXISTS stocks_staging AUTHORIZATION stocks_dbt;
CREATE SCHEMA IF NOT EXISTS stocks_marts AUTHORIZATION stocks_dbt;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT n.nspname FROM pg_catalog.pg_namespace n
              WHERE n.nspname IN ('stocks_dbt', 'stocks_staging', 'stocks_marts')
                AND n.nspowner <> 'stocks_dbt'::pg_catalog.regrole LOOP
        EXECUTE pg_catalog.format('ALTER SCHEMA %I OWNER TO stocks_dbt', r.nspname);
    END LOOP;
    FOR r IN SELECT c.oid::pg_catalog.regclass AS rel,
                    CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('stocks_dbt', 'stocks_staging', 'stocks_marts')
                AND c.relkind IN ('r', 'p', 'v', 'm')
                AND c.relowner <> 'stocks_dbt'::pg_catalog.regrole LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO stocks_dbt', r.kind, r.rel);
    END LOOP;
END;
$$;
-- what dbt builds in stocks_marts is for readers
GRANT USAGE ON SCHEMA stocks_marts TO stocks_stream_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE stocks_dbt IN SCHEMA stocks_marts GRANT SELECT ON TABLES TO stocks_stream_reader;
