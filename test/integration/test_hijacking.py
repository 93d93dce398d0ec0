"""No name hijacking: every function of the extension pins its search_path
(or has a SQL-standard body, bound when it was created), so overloads that
someone who can write a schema on the caller's path puts there are never
called, however the sessions that run the pipeline set their search_path
(PostgreSQL's "Security Considerations for Extension Scripts")."""
import uuid

import psycopg
import pytest

from http_helpers import get
from stack_support import Source, Topic, named_row, quote_message, sql, sql_value, wait_until


def test_every_function_of_the_extension_pins_its_search_path():
    rows = sql("SELECT p.oid::regprocedure::text AS fn, p.proconfig, p.prosqlbody IS NOT NULL AS bound, "
               "       p.prokind = 'p' AND NOT p.prosecdef AS procedure "
               "  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
               " WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream')")
    pinned = [r.fn for r in rows if "search_path=pg_catalog, pg_temp" in (r.proconfig or [])]
    bound = [r.fn for r in rows if r.bound and not r.proconfig]
    # a procedure that commits can have no SET clause (PostgreSQL forbids
    # COMMIT then): it runs as its caller and qualifies every name it uses,
    # operators included (tier_to_lake, sql/lake.sql)
    committing = [r.fn for r in rows if r.procedure and not r.proconfig and not r.bound]
    assert committing == ["stocks_stream.tier_to_lake(integer)"]
    loose = [r.fn for r in rows if r.fn not in pinned and r.fn not in bound and r.fn not in committing]
    print(f"\n{len(pinned)} functions pin search_path = pg_catalog, pg_temp; {len(bound)} have SQL-standard "
          f"bodies (inlined, bound at creation): {', '.join(sorted(bound))}")
    assert loose == []
    assert len(pinned) + len(bound) + len(committing) == len(rows) > 40
    definers = sql("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid "
                   " WHERE d.deptype = 'e' AND p.prosecdef "
                   "   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
                   "   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)")
    assert definers == []


# Overloads in public.  Those marked exact beat pg_catalog's own function
# even when pg_catalog comes first in the search_path (an exact argument
# type wins over a polymorphic one, as in CVE-2018-1058); the others, with
# pg_catalog's very signature, win when public is named before pg_catalog.
# Each counts its calls in a sequence (sequences survive a rollback) and
# then does what the real one does, so a call cannot go unnoticed.
FUNCTIONS = [
    # name, arguments, result, the real one
    ("unnest", "a text[]", "SETOF text", "pg_catalog.unnest(a)"),                       # exact
    ("array_to_string", "a text[], b text", "text", "pg_catalog.array_to_string(a, b)"),  # exact
    ("cardinality", "a text[]", "integer", "pg_catalog.cardinality(a)"),                # exact
    ("array_position", "a text[], b text", "integer", "pg_catalog.array_position(a, b)"),  # exact
    ("format", "a text, b text", "text", "pg_catalog.format(a, b)"),                    # exact
    ("format", "a text, b text, c text", "text", "pg_catalog.format(a, b, c)"),         # exact
    ("concat", "a text, b text", "text", "pg_catalog.concat(a, b)"),                    # exact
    ("to_char", "a date, b text", "text", "pg_catalog.to_char(a, b)"),                  # exact
    ("lower", "a text", "text", "pg_catalog.lower(a)"),
    ("upper", "a text", "text", "pg_catalog.upper(a)"),
    ("length", "a text", "integer", "pg_catalog.length(a)"),
    ("current_setting", "a text", "text", "pg_catalog.current_setting(a)"),
    ("current_setting", "a text, b boolean", "text", "pg_catalog.current_setting(a, b)"),
    ("current_database", "", "name", "pg_catalog.current_database()"),
    ("now", "", "timestamptz", "pg_catalog.now()"),
    ("to_regclass", "a text", "regclass", "pg_catalog.to_regclass(a)"),
    ("hashtext", "a text", "integer", "pg_catalog.hashtext(a)"),
    ("date_bin", "a interval, b timestamptz, c timestamptz", "timestamptz", "pg_catalog.date_bin(a, b, c)"),
    ("round", "a numeric, b integer", "numeric", "pg_catalog.round(a, b)"),
    ("trim_scale", "a numeric", "numeric", "pg_catalog.trim_scale(a)"),
    ("abs", "a double precision", "double precision", "pg_catalog.abs(a)"),
    ("jsonb_typeof", "a jsonb", "text", "pg_catalog.jsonb_typeof(a)"),
    ("symbol_is_valid", "a text", "boolean", "true"),            # the extension's own name, in public
]
OPERATORS = [
    # operator, left, right, result, the real one
    ("=", "text", "text", "boolean", "pg_catalog.texteq(a, b)"),
    ("<>", "text", "text", "boolean", "pg_catalog.textne(a, b)"),
    ("=", "integer", "integer", "boolean", "pg_catalog.int4eq(a, b)"),
    ("=", "text[]", "text[]", "boolean", "pg_catalog.array_eq(a, b)"),   # exact
    ("+", "numeric", "numeric", "numeric", "pg_catalog.numeric_add(a, b)"),
    ("-", "timestamptz", "interval", "timestamptz", "pg_catalog.timestamptz_mi_interval(a, b)"),
    ("~", "text", "text", "boolean", "pg_catalog.textregexeq(a, b)"),
    ("||", "text", "text", "text", "pg_catalog.textcat(a, b)"),
    ("->>", "jsonb", "text", "text", "pg_catalog.jsonb_object_field_text(a, b)"),
]


@pytest.fixture
def overloads():
    """Creates the overloads; yields a function returning the name of each
    one that was ever called; drops them all."""
    made = []
    sql("CREATE SCHEMA IF NOT EXISTS hijack")
    sql("GRANT USAGE ON SCHEMA hijack TO PUBLIC")
    try:
        for i, (name, args, result, real) in enumerate(FUNCTIONS):
            seq = f"hijack.called_{i}"
            sql(f"CREATE SEQUENCE {seq}")
            sql(f"CREATE FUNCTION public.{name}({args}) RETURNS {result} LANGUAGE sql VOLATILE AS "
                f"$$ SELECT pg_catalog.nextval('{seq}'); SELECT {real} $$")
            made.append((f"public.{name}({args})", seq, f"FUNCTION public.{name}({args})"))
        for i, (op, left, right, result, real) in enumerate(OPERATORS):
            seq, fn = f"hijack.op_called_{i}", f"hijack.op_{i}"
            sql(f"CREATE SEQUENCE {seq}")
            sql(f"CREATE FUNCTION {fn}(a {left}, b {right}) RETURNS {result} LANGUAGE sql VOLATILE AS "
                f"$$ SELECT pg_catalog.nextval('{seq}'); SELECT {real} $$")
            sql(f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {fn})")
            made.append((f"public.{op}({left}, {right})", seq, f"OPERATOR public.{op} ({left}, {right})"))
        sql("GRANT USAGE ON ALL SEQUENCES IN SCHEMA hijack TO PUBLIC")

        def called():
            return [what for what, seq, _ in made if sql_value(f"SELECT is_called FROM {seq}")]

        # the overloads work: a session that does not pin its path calls them
        with psycopg.connect(autocommit=True) as probe:
            probe.execute("SET search_path = public, pg_catalog")
            probe.execute("SELECT 'a'::text = 'b'::text, format('%s', 'x'::text)")
        assert called() == ["public.format(a text, b text)", "public.=(text, text)"]
        for _, seq, _ in made:
            sql(f"ALTER SEQUENCE {seq} RESTART")
            sql(f"SELECT setval('{seq}', 1, false)")
        yield called
    finally:
        for _, _, drop in reversed(made):
            sql(f"DROP {drop}")
        sql("DROP SCHEMA hijack CASCADE")


@pytest.fixture
def pipeline_sessions():
    """Operator, reader and anonymous sessions whose search_path names public
    first, before pg_catalog (set on their login roles, as ALTER ROLE ... SET
    would in a deployment)."""
    logins = {"operator": "t_hop_" + uuid.uuid4().hex[:6], "reader": "t_hrd_" + uuid.uuid4().hex[:6]}
    for kind, login in logins.items():
        sql(f"CREATE ROLE {login} LOGIN IN ROLE stocks_stream_{kind}")
        sql(f"ALTER ROLE {login} SET search_path = public, pg_catalog")
    conns = {kind: psycopg.connect(user=login, autocommit=True, row_factory=named_row)
             for kind, login in logins.items()}
    anon = psycopg.connect(user="stocks_stream_authenticator", autocommit=True, row_factory=named_row)
    anon.execute("SET ROLE stocks_stream_anon")
    anon.execute("SET search_path = public, pg_catalog")
    conns["anon"] = anon
    for conn in conns.values():
        assert conn.execute("SHOW search_path").fetchone()[0] == "public, pg_catalog"
    yield conns
    for conn in conns.values():
        conn.close()
    for login in logins.values():
        sql(f"DROP ROLE {login}")


def test_the_whole_pipeline_never_calls_an_overload_in_public(overloads, pipeline_sessions):
    op, reader, anon = pipeline_sessions["operator"], pipeline_sessions["reader"], pipeline_sessions["anon"]
    t = Topic()
    name, bucket, source = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10], "s_" + uuid.uuid4().hex[:8]
    symbol = "HJ" + uuid.uuid4().hex[:6].upper()
    try:
        # manage: a pipeline and a source (created, altered, dropped; a
        # running source is the next test's)
        op.execute("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300)", [name, t.name, bucket])
        op.execute("SELECT stocks_stream.alter_pipeline(%s, batch_max_messages => 1000)", [name])
        op.execute("SELECT stocks_stream.create_source(%s, 'simulator', ARRAY[%s, 'MSFT'], %s, "
                   "options => '{\"seed\": 1, \"rate\": 10}')", [source, symbol, t.name])
        op.execute("SELECT stocks_stream.alter_source(%s, symbols => ARRAY[%s])", [source, symbol])
        op.execute("SELECT stocks_stream.stop_source(%s)", [source])
        op.execute("SELECT stocks_stream.drop_source(%s)", [source])
        # archive, load, refresh
        op.execute("SELECT stocks_stream.start_pipeline(%s)", [name])
        t.produce([quote_message(i, symbol) for i in range(2000)])
        # (the test's own queries with operators run in a session of its
        # own: in these sessions, they would call the overloads themselves)
        wait_until(lambda: sql_value("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest "
                                     "WHERE pipeline = %s", [name]) == 2000,
                   120, "2000 messages archived")
        op.execute("SELECT stocks_stream.stop_pipeline(%s)", [name])
        loaded = op.execute("SELECT * FROM stocks_stream.load_bronze(%s)", [name]).fetchone()
        assert loaded.rows_loaded == 2000 and loaded.objects_failed == 0
        again = op.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [bucket]).fetchone()
        assert again.rows_loaded == 0 and again.objects_failed == 0
        assert op.execute("SELECT stocks_stream.refresh_gold()").fetchone()[0] > 0
        op.execute("SELECT stocks_stream.rebuild_daily(%s)", [symbol])
        op.execute("SELECT stocks_stream.refresh_gold()")
        op.execute("SELECT stocks_stream.retry_failed_objects(%s)", [name])
        op.execute("SELECT stocks_stream.drop_silver_before(date '2000-01-01')")
        op.execute("SELECT * FROM stocks_stream.reset_pipeline_offsets(%s, 'latest')", [name])
        op.execute("SELECT * FROM stocks_stream.check_bronze_line(%s)", [quote_message(1, symbol).encode()])
        op.execute("CALL stocks_stream.tier_to_lake()")
        # status and reads
        for conn in (op, reader):
            conn.execute("SELECT * FROM stocks_stream.worker_status")
            conn.execute("SELECT * FROM stocks_stream.source_status")
            conn.execute("SELECT * FROM stocks_stream.consumer_lag")
            conn.execute("SELECT * FROM stocks_stream.candles LIMIT 5")
            conn.execute("SELECT * FROM stocks_stream.lake_status")
        assert sql_value("SELECT count(*) FROM stocks_stream.candles WHERE symbol = %s", [symbol]) > 0
        # the api, in SQL and over HTTP (PostgREST: search_path api, public)
        for conn in (reader, anon):
            for view in ("candles", "daily_summary", "top_movers", "latest_quotes", "daily_candles",
                         "symbol_volatility", "exchanges", "symbols", "archive_gaps", "pipeline_health", "lake_days"):
                conn.execute(f"SELECT * FROM api.{view} LIMIT 5")
            series = conn.execute("SELECT * FROM api.candle_series(%s, '15m', '2025-11-24', '2025-11-26')",
                                  [symbol]).fetchall()
            assert series
        for path in (f"/candles?symbol=eq.{symbol}&limit=3", "/pipeline_health", "/symbols", "/top_movers",
                     f"/rpc/candle_series?symbol={symbol}&interval=1h&start_time=2025-11-24T00:00:00Z"
                     "&end_time=2025-11-26T00:00:00Z"):
            answer = get(path)
            assert answer.status == 200, (path, answer.text)
        assert get(f"/candles?symbol=eq.{symbol}&limit=1").json()
    finally:
        sql("SELECT stocks_stream.drop_pipeline(name) FROM stocks_stream.pipelines WHERE name = %s", [name])
        sql("SELECT stocks_stream.drop_source(name) FROM stocks_stream.sources WHERE name = %s", [source])
    assert overloads() == []


def test_a_running_source_never_calls_an_overload_in_public(overloads):
    """The workers run their own queries with search_path pinned to
    pg_catalog, pg_temp: even an exact-type overload in public (which would
    win over pg_catalog's polymorphic array_to_string() and cardinality()
    under the database's default search_path) is never called."""
    t = Topic()
    src = Source("simulator", ["AAPL", "MSFT"], t.name, options={"seed": 3, "rate": 500, "max_messages": 50})
    try:
        src.start()
        wait_until(lambda: (src.status() or {}).get("produced") == 50, 60, "the source to produce 50 messages")
    finally:
        src.drop()
    assert overloads() == []
