"""Least privilege: the roles the extension makes (docs/security.md).

stocks_stream_operator runs the pipeline, stocks_stream_reader reads silver,
gold and status, stocks_stream_anon (PostgREST's role) reads the api.  Each
escalation a deployment fears is tried as each of them, and must fail with
the SQLSTATE named here; then the operator runs the whole pipeline and the
reader reads it, with nothing more."""
import uuid

import psycopg
import pytest

from stack_support import Topic, named_row, quote_message, secrets_path, sql, sql_value, wait_until

ROLES = ("operator", "reader", "anon")
SERVER_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                "pg_read_all_settings", "pg_read_all_data", "pg_write_all_data", "pg_monitor")


@pytest.fixture(scope="module")
def logins():
    """A login role in each group role, as a deployment makes them; anon is
    reached as PostgREST reaches it, from the authenticator by SET ROLE."""
    made = {"operator": "t_op_" + uuid.uuid4().hex[:6], "reader": "t_rd_" + uuid.uuid4().hex[:6]}
    for kind, login in made.items():
        sql(f"CREATE ROLE {login} LOGIN IN ROLE stocks_stream_{kind}")
    yield made
    for login in made.values():
        sql(f"DROP ROLE {login}")


def connect(logins, role):
    if role == "anon":
        conn = psycopg.connect(user="stocks_stream_authenticator", autocommit=True, row_factory=named_row)
        conn.execute("SET ROLE stocks_stream_anon")
        return conn
    return psycopg.connect(user=logins[role], autocommit=True, row_factory=named_row)


@pytest.fixture(scope="module")
def sessions(logins):
    conns = {role: connect(logins, role) for role in ROLES}
    yield conns
    for conn in conns.values():
        conn.execute("DISCARD TEMP")    # before DROP ROLE: a closed session drops its tables later
        conn.close()


def test_no_role_is_a_superuser_or_reaches_the_servers_files_programs_or_settings():
    for role in ("stocks_stream_operator", "stocks_stream_reader", "stocks_stream_anon",
                 "stocks_stream_api_owner", "stocks_stream_authenticator"):
        row = sql("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
                  "FROM pg_roles WHERE rolname = %s", [role])[0]
        assert not any(row), f"{role} has {row}"
        member_of = [r for r in SERVER_ROLES if sql_value("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, r])]
        assert member_of == [], f"{role} is a member of {member_of}"
    for role in ("stocks_stream_operator", "stocks_stream_reader", "stocks_stream_anon", "stocks_stream_api_owner"):
        assert not sql_value("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role])


SECRETS = "{secrets}"    # replaced by the absolute path of stocks_stream.secrets_file

# (what is tried, statement, SQLSTATE): 42501 insufficient_privilege unless
# said otherwise; 55P02 is "cannot be changed now" (a setting only the
# server's configuration sets)
ATTEMPTS = [
    ("pg_read_file of the secrets file", f"SELECT pg_read_file('{SECRETS}')", "42501"),
    ("pg_read_file of the secrets setting", "SELECT pg_read_file(current_setting('stocks_stream.secrets_file'))", "42501"),
    ("pg_read_binary_file of the secrets file", f"SELECT pg_read_binary_file('{SECRETS}')", "42501"),
    ("COPY FROM the secrets file", f"COPY pg_temp.scratch FROM '{SECRETS}'", "42501"),
    ("lo_import of the secrets file", f"SELECT lo_import('{SECRETS}')", "42501"),
    ("SHOW kafka_properties (may hold a password)", "SHOW stocks_stream.kafka_properties", "42501"),
    ("current_setting of kafka_properties", "SELECT current_setting('stocks_stream.kafka_properties')", "42501"),
    ("point secrets_file elsewhere", "SET stocks_stream.secrets_file = '/etc/passwd'", "55P02"),
    ("point the S3 endpoint elsewhere", "SET stocks_stream.s3_endpoint = 'http://127.0.0.1:1'", "55P02"),
    ("change a superuser setting", "SET stocks_stream.quarantine_raw_max = 0", "42501"),
    ("ALTER SYSTEM", "ALTER SYSTEM SET stocks_stream.secrets_file = '/etc/passwd'", "42501"),
    ("pg_read_file of a server file", "SELECT pg_read_file('/etc/passwd')", "42501"),
    ("pg_read_file of postgresql.conf", "SELECT pg_read_file('postgresql.conf')", "42501"),
    ("pg_ls_dir of the data directory", "SELECT pg_ls_dir('.')", "42501"),
    ("pg_stat_file", "SELECT pg_stat_file('postgresql.conf')", "42501"),
    ("COPY TO a server file", "COPY (SELECT 1) TO '/tmp/stocks_stream_escalation'", "42501"),
    ("COPY TO PROGRAM", "COPY (SELECT 1) TO PROGRAM 'id'", "42501"),
    ("COPY FROM PROGRAM", f"COPY pg_temp.scratch FROM PROGRAM 'cat {SECRETS}'", "42501"),
    ("LOAD a library", "LOAD '/lib/x86_64-linux-gnu/libc.so.6'", "42501"),
    ("a C function", "CREATE FUNCTION pg_temp.sys(text) RETURNS int "
                     "AS '/lib/x86_64-linux-gnu/libc.so.6', 'system' LANGUAGE c", "42501"),
    ("SET ROLE postgres", "SET ROLE postgres", "42501"),
    ("SET SESSION AUTHORIZATION postgres", "SET SESSION AUTHORIZATION postgres", "42501"),
    ("ALTER ROLE ... SUPERUSER", "ALTER ROLE CURRENT_USER SUPERUSER", "42501"),
    ("ALTER ROLE another", "ALTER ROLE stocks_stream_authenticator PASSWORD 'x'", "42501"),
    ("grant itself pg_read_server_files", "GRANT pg_read_server_files TO CURRENT_USER", "42501"),
    ("grant itself pg_execute_server_program", "GRANT pg_execute_server_program TO CURRENT_USER", "42501"),
    ("grant itself the operator role", "GRANT stocks_stream_operator TO CURRENT_USER", "42501"),
    ("CREATE ROLE", "CREATE ROLE t_escalated SUPERUSER", "42501"),
    ("a SECURITY DEFINER function in stocks_stream",
     "CREATE FUNCTION stocks_stream.trap() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'", "42501"),
    ("a function in api", "CREATE FUNCTION api.trap() RETURNS int LANGUAGE sql AS 'SELECT 1'", "42501"),
    ("a function in public", "CREATE FUNCTION public.trap() RETURNS int LANGUAGE sql AS 'SELECT 1'", "42501"),
    ("a schema of its own", "CREATE SCHEMA trap", "42501"),
    ("replace an extension function",
     "CREATE OR REPLACE FUNCTION stocks_stream.refresh_gold() RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'",
     "42501"),
    ("take over an extension function",
     "ALTER FUNCTION stocks_stream.load_bronze(text, integer) OWNER TO CURRENT_USER", "42501"),
    ("update the extension", "ALTER EXTENSION stocks_stream UPDATE", "42501"),
    ("a trigger on an extension table",
     "CREATE TRIGGER trap BEFORE INSERT ON stocks_stream.quotes FOR EACH ROW EXECUTE FUNCTION pg_temp.nothing()",
     "42501"),
    ("insert a pipeline directly",
     "INSERT INTO stocks_stream.pipelines (name, topic, bucket) VALUES ('trap', 'trap', 'trap')", "42501"),
    ("move stored offsets directly", "UPDATE stocks_stream.offsets SET next_offset = 0", "42501"),
    ("delete the manifest directly", "DELETE FROM stocks_stream.manifest", "42501"),
    ("write the lake's records directly", "UPDATE stocks_stream.lake_objects SET iceberg_snapshot_id = 1", "42501"),
    ("set a crash point", "SET stocks_stream.test_crash_point = 'frozen'", "42501"),
    ("export a day directly",
     "SELECT * FROM stocks_stream._lake_export('trades', '2000-01-01', 'b', 'p', 1)", "42501"),
    ("write silver directly",
     "INSERT INTO stocks_stream.quotes (symbol, quote_time, price) VALUES ('TRAP', now(), 1)", "42501"),
    ("write gold directly", "DELETE FROM stocks_stream.candles", "42501"),
    ("truncate the quarantine", "TRUNCATE stocks_stream.quarantine", "42501"),
    ("change a built-in exchange", "UPDATE stocks_stream.exchanges SET priority = 1 WHERE exchange = 'US'", "42501"),
]

# what only the operator may do: the others are refused at the door (42501)
OPERATOR_ONLY = [
    ("create a pipeline", "SELECT stocks_stream.create_pipeline('t_refused', 't_refused', 'refused')"),
    ("create a source", "SELECT stocks_stream.create_source('t_refused', 'simulator', ARRAY['AAPL'], 't_refused')"),
    ("load bronze", "SELECT * FROM stocks_stream.load_bronze()"),
    ("load a bucket", "SELECT * FROM stocks_stream.load_bronze_prefix('refused', '')"),
    ("refresh gold", "SELECT stocks_stream.refresh_gold()"),
    ("retry failed loads", "SELECT stocks_stream.retry_failed_objects()"),
    ("reset offsets", "SELECT * FROM stocks_stream.reset_pipeline_offsets('t_refused', 'earliest')"),
    ("drop silver", "SELECT stocks_stream.drop_silver_before(date '2000-01-01')"),
    ("set a lake retention", "SELECT stocks_stream.set_lake_retention('trades', 7, 'refused')"),
    ("drop a lake retention", "SELECT stocks_stream.drop_lake_retention('trades')"),
    ("tier silver to the lake", "CALL stocks_stream.tier_to_lake()"),
    ("take a tiering step", "SELECT stocks_stream._lake_next_step(now())"),
    ("add an exchange", "INSERT INTO stocks_stream.exchanges VALUES ('TRAP', 'UTC', '^TRAP$', 1)"),
]


def attempt(conn, statement):
    """The SQLSTATE the statement fails with (None when it succeeds)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (line text)")
    try:
        conn.execute(statement.replace(SECRETS, secrets_path()))
    except psycopg.Error as e:
        return e.sqlstate
    return None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("what, statement, sqlstate", ATTEMPTS, ids=[a[0] for a in ATTEMPTS])
def test_each_escalation_fails_as_each_role(sessions, role, what, statement, sqlstate):
    assert attempt(sessions[role], statement) == sqlstate


@pytest.mark.parametrize("role", ("reader", "anon"))
@pytest.mark.parametrize("what, statement", OPERATOR_ONLY, ids=[a[0] for a in OPERATOR_ONLY])
def test_only_the_operator_runs_the_pipeline(sessions, role, what, statement):
    assert attempt(sessions[role], statement) == "42501"


@pytest.mark.parametrize("statement", ["SELECT count(*) FROM stocks_stream.quotes",
                                       "SELECT count(*) FROM stocks_stream.candles",
                                       "SELECT count(*) FROM stocks_stream.worker_status",
                                       "SELECT count(*) FROM stocks_stream.pipelines"])
def test_anon_reads_nothing_outside_the_api(sessions, statement):
    assert attempt(sessions["anon"], statement) == "42501"


def test_refresh_gold_refuses_work_tables_the_caller_made_first(sessions):
    """refresh_gold() runs as the extension's owner and keeps its work in
    temporary tables: one the operator made first (here with a trigger that
    would run as the owner) is refused, and nothing runs."""
    op = sessions["operator"]
    op.execute("CREATE TEMP TABLE ss_dirty (symbol text, minute timestamptz)")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            op.execute("SELECT stocks_stream.refresh_gold()")
        assert "ss_dirty" in e.value.diag.message_primary
        assert "DROP TABLE pg_temp.ss_dirty" in e.value.diag.message_hint
    finally:
        op.execute("DROP TABLE pg_temp.ss_dirty")
    op.execute("SELECT stocks_stream.refresh_gold()")


def test_the_operator_runs_the_whole_pipeline_and_the_reader_reads_it(sessions):
    op, reader = sessions["operator"], sessions["reader"]
    t = Topic()
    name, bucket, source = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10], "s_" + uuid.uuid4().hex[:8]
    op.execute("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300)", [name, t.name, bucket])
    op.execute("SELECT stocks_stream.alter_pipeline(%s, batch_max_messages => 500)", [name])
    op.execute("SELECT stocks_stream.create_source(%s, 'simulator', ARRAY['AAPL', 'MSFT'], %s, "
               "options => '{\"seed\": 7, \"rate\": 2000, \"max_messages\": 200, \"quote_every\": 4}')",
               [source, t.name])
    try:
        op.execute("SELECT stocks_stream.start_pipeline(%s)", [name])
        op.execute("SELECT stocks_stream.start_source(%s)", [source])
        t.produce([quote_message(i) for i in range(300)])

        def archived():
            return op.execute("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest "
                              "WHERE pipeline = %s", [name]).fetchone()[0]
        wait_until(lambda: archived() == 500, 120, "500 messages archived as the operator")
        status = op.execute("SELECT state FROM stocks_stream.worker_status WHERE pipeline = %s", [name]).fetchall()
        assert status, "the operator sees its pipeline's workers"
        assert op.execute("SELECT count(*) FROM stocks_stream.consumer_lag WHERE pipeline = %s", [name]).fetchone()[0] == 4
        assert op.execute("SELECT count(*) FROM stocks_stream.source_status WHERE source = %s", [source]).fetchone()[0] == 1
        op.execute("SELECT stocks_stream.stop_source(%s)", [source])
        op.execute("SELECT stocks_stream.stop_pipeline(%s)", [name])

        loaded = op.execute("SELECT * FROM stocks_stream.load_bronze(%s)", [name]).fetchone()
        assert loaded.rows_loaded == 500 and loaded.objects_failed == 0
        assert op.execute("SELECT stocks_stream.retry_failed_objects(%s)", [name]).fetchone()[0] == 0
        assert op.execute("SELECT stocks_stream.refresh_gold()").fetchone()[0] > 0
        assert op.execute("SELECT count(*) FROM stocks_stream.reset_pipeline_offsets(%s, 'latest')",
                          [name]).fetchone()[0] == 4
        op.execute("INSERT INTO stocks_stream.symbol_exchanges VALUES ('MSFT', 'US')")
        assert op.execute("SELECT stocks_stream.rebuild_daily('MSFT')").fetchone()[0] > 0
        op.execute("DELETE FROM stocks_stream.symbol_exchanges WHERE symbol = 'MSFT'")
        op.execute("SELECT stocks_stream.refresh_gold()")

        # the reader reads silver, gold and status, and the api
        silver = reader.execute("SELECT count(*) FROM stocks_stream.quotes WHERE source_topic = %s",
                                [t.name]).fetchone()[0]
        trades = reader.execute("SELECT count(*) FROM stocks_stream.trades WHERE source_topic = %s",
                                [t.name]).fetchone()[0]
        assert silver + trades == 500
        assert reader.execute("SELECT count(*) FROM stocks_stream.candles WHERE symbol = 'MSFT'").fetchone()[0] > 0
        assert reader.execute("SELECT count(*) FROM stocks_stream.daily_summary").fetchone()[0] > 0
        assert reader.execute("SELECT count(*) FROM api.candles WHERE symbol = 'AAPL'").fetchone()[0] > 0
        assert reader.execute("SELECT count(*) FROM api.pipeline_health WHERE name = %s", [name]).fetchone()[0] >= 1
        reader.execute("SELECT * FROM stocks_stream.worker_status")
        reader.execute("SELECT * FROM stocks_stream.consumer_lag")
        reader.execute("SELECT * FROM stocks_stream.source_status")
        assert attempt(reader, f"SELECT stocks_stream.stop_pipeline('{name}')") == "42501"
        assert attempt(reader, f"DELETE FROM stocks_stream.quotes WHERE source_topic = '{t.name}'") == "42501"
        assert attempt(reader, "INSERT INTO stocks_stream.symbol_exchanges VALUES ('TRAP', 'US')") == "42501"
    finally:
        op.execute("SELECT stocks_stream.drop_source(name) FROM stocks_stream.sources WHERE name = %s", [source])
        op.execute("SELECT stocks_stream.drop_pipeline(name) FROM stocks_stream.pipelines WHERE name = %s", [name])
    assert sql_value("SELECT count(*) FROM stocks_stream.pipelines WHERE name = %s", [name]) == 0


def test_the_operators_functions_check_their_arguments(sessions):
    op = sessions["operator"]
    for statement, sqlstate in [
        ("SELECT stocks_stream.create_pipeline('Bad Name', 't', 'bucket')", "22023"),
        ("SELECT stocks_stream.create_pipeline('ok', 't', '../etc')", "22023"),
        ("SELECT stocks_stream.create_source('ok', 'simulator', ARRAY['not a symbol'], 't')", "22023"),
        ("SELECT stocks_stream.start_pipeline('no_such_pipeline')", "42704"),
        ("SELECT * FROM stocks_stream.load_bronze('no_such_pipeline')", "42704"),
        ("SELECT * FROM stocks_stream.load_bronze(max_objects => 0)", "22023"),
        ("SELECT * FROM stocks_stream.load_bronze_prefix(NULL, '')", "22023"),
        ("SELECT * FROM stocks_stream.reset_pipeline_offsets('no_such_pipeline', 'earliest')", "42704"),
        ("SELECT stocks_stream.refresh_gold(NULL, NULL)", "22004"),
        ("SELECT stocks_stream.drop_silver_before(NULL)", "22004"),
        ("SELECT stocks_stream.set_lake_retention('gold', 7, 'bucket')", "22023"),
        ("CALL stocks_stream.tier_to_lake(0)", "22023"),
    ]:
        assert attempt(op, statement) == sqlstate, statement
