"""load_bronze(): bronze objects into silver, exactly once, bad lines quarantined."""
import hashlib
import json
import threading
import uuid

import psycopg
import pytest

from stack_support import Pipeline, Topic, named_row, parse_key, quote_message, s3_client, sql, sql_value, stack, wait_until


def trade_message(i, symbol="MSFT"):
    return json.dumps({"s": symbol, "p": round(300 + i / 100, 2), "t": 1764000000000 + i, "v": i % 500,
                       "c": ["1", "12"]}, separators=(",", ":"))


# Each poison line, named, with the reason it is quarantined with.
POISON_CASES = [
    pytest.param(b'{"c": 187.2, "d": 1.1,', "line is not valid JSON", id="malformed-json"),
    pytest.param(b'{"c":"abc","d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}',
                 'field "c" is not a number', id="wrong-type"),
    pytest.param(b'{"c":NaN,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}',
                 'field "c" is not a finite number', id="nan"),
    pytest.param(b'{"c":-5,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}',
                 'price ("c") is not greater than 0', id="negative-price"),
    pytest.param(b'{"c":5,"d":1,"dp":1,"h":1,"l":2,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}',
                 'day high ("h") is below day low ("l")', id="high-below-low"),
    pytest.param(b'{"c":5,"d":1,"dp":1,"h":6,"l":2,"o":3,"pc":4,"t":0,"symbol":"AAPL"}',
                 'field "t" is 0 or negative (no time)', id="zero-time"),
    pytest.param(b'{"blob":"' + b"x" * (1024 * 1024) + b'"}',
                 "line of 1048587 bytes is longer than the limit of 65536", id="1mb-line"),
    pytest.param(b'{"s":"AAPL","p":1.5,"t":1764000000000,"v":1,"c":["\xff\xfe"]}',
                 "line is not valid UTF-8", id="bad-utf8"),
]
POISON = {case.values[0]: case.values[1] for case in POISON_CASES}      # raw line -> reason
KEPT = 4096   # stocks_stream.quarantine_raw_max's default: the most bytes of a line the quarantine keeps


def kept(raw):
    """What the quarantine keeps of a line, and what its reason adds for a longer one."""
    if len(raw) <= KEPT:
        return raw, ""
    return raw[:KEPT], f" (a line of {len(raw)} bytes, SHA-256 {hashlib.sha256(raw).hexdigest()}: its first {KEPT} kept)"


def silver_sources(topic):
    return {(r.source_partition, r.source_offset) for r in sql(
        "SELECT source_partition, source_offset FROM stocks_stream.quotes WHERE source_topic = %s "
        "UNION ALL SELECT source_partition, source_offset FROM stocks_stream.trades WHERE source_topic = %s",
        [topic, topic])}


def silver_count(topic):
    return sql_value("SELECT (SELECT count(*) FROM stocks_stream.quotes WHERE source_topic = %s) + "
                     "(SELECT count(*) FROM stocks_stream.trades WHERE source_topic = %s)", [topic, topic])


def load(pipeline):
    """One load_bronze() call: (objects_loaded, rows_loaded, rows_duplicate, rows_quarantined, objects_failed)."""
    (result,) = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [pipeline.name])
    return result


@pytest.fixture(scope="module")
def poisoned():
    """Good quotes and trades and every poison line, archived (gzip) and loaded once."""
    topic = Topic()
    p = Pipeline(topic, batch_max_age_ms=300, batch_max_bytes=2 * 1024 * 1024, gzip=True)
    try:
        p.start()
        good = [quote_message(i) for i in range(300)] + [trade_message(i) for i in range(300)]
        topic.produce(good + list(POISON), partition=None)
        p.wait_archived(len(good) + len(POISON))
        first_load = load(p)
        quarantine = sql("SELECT object_key, line_number, raw, reason FROM stocks_stream.quarantine "
                         "WHERE object_key LIKE %s", [f"%/{topic.name}/%"])
        yield {"topic": topic, "pipeline": p, "load": first_load, "quarantine": quarantine}
    finally:
        p.drop()


def test_good_lines_reach_silver_and_the_poison_lines_quarantine(poisoned):
    topic, p, result = poisoned["topic"], poisoned["pipeline"], poisoned["load"]
    poison_at = {k: v for k, v in topic.produced.items() if v in POISON}
    assert len(poison_at) == len(POISON)

    assert (result.rows_loaded, result.rows_duplicate, result.rows_quarantined, result.objects_failed) == \
        (600, 0, len(POISON), 0)
    assert result.objects_loaded == len(p.manifest())
    expected = set(topic.produced) - set(poison_at)
    assert silver_sources(topic.name) == expected
    # the quarantine holds exactly the bad lines (each one's reason: the test below)
    assert sorted(bytes(r.raw) for r in poisoned["quarantine"]) == sorted(kept(raw)[0] for raw in POISON)
    # typed values
    (row,) = sql("SELECT symbol, price, day_high, day_low, extract(epoch FROM quote_time) FROM stocks_stream.quotes "
                 "WHERE source_topic = %s ORDER BY source_partition, source_offset LIMIT 1", [topic.name])
    assert row.symbol == "AAPL" and row.day_high == 161.2 and row.day_low == 149.8
    # a second call finds nothing new
    assert load(p) == (0, 0, 0, 0, 0)
    # gold follows: the loaded minutes are refreshed into candles
    assert sql_value("SELECT stocks_stream.refresh_gold()") > 0
    c = sql("SELECT built_from, sample_count FROM stocks_stream.candles WHERE symbol = 'MSFT' AND interval = '1m' "
            "AND bucket_start = to_timestamp(1764000000)")
    assert c and c[0].built_from == "trades" and c[0].sample_count >= 300
    assert sql_value("SELECT stocks_stream.refresh_gold()") == 0


@pytest.mark.parametrize("raw, reason", POISON_CASES)
def test_poison_line_is_quarantined_byte_for_byte_with_its_reason(poisoned, raw, reason):
    """Byte for byte up to quarantine_raw_max; of a longer line its start, length and hash."""
    start, more = kept(raw)
    rows = [r for r in poisoned["quarantine"] if bytes(r.raw) == start]
    assert [r.reason for r in rows] == [reason + more]
    # and it names where the line came from: its object, and its line there (0 = the first offset)
    (produced_at,) = [where for where, value in poisoned["topic"].produced.items() if value == raw]
    key = parse_key(rows[0].object_key)
    assert (key["partition"], key["first_offset"] + rows[0].line_number) == produced_at


def test_two_concurrent_loaders_never_duplicate(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_messages=25, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) if i % 2 else trade_message(i) for i in range(2000)])
    p.wait_archived(2000)
    results = []

    def run():
        with psycopg.connect(autocommit=True, row_factory=named_row) as conn:
            results.append(conn.execute("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name]).fetchone())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(r.objects_loaded for r in results) == len(p.manifest())
    assert sum(r.rows_loaded for r in results) == 2000 and sum(r.rows_duplicate for r in results) == 0
    assert silver_count(topic.name) == 2000 == len(silver_sources(topic.name))


def test_one_call_over_two_pipelines_of_one_topic_loads_each_message_once(topic, make_pipeline):
    """Two pipelines archive the same topic: one load_bronze() call meets every
    message twice, loads it once and counts the second copy as a duplicate."""
    sql("SELECT * FROM stocks_stream.load_bronze()")  # what earlier tests left
    a = make_pipeline(topic, batch_max_messages=50, batch_max_age_ms=300)
    b = make_pipeline(topic, batch_max_messages=70, batch_max_age_ms=300, gzip=True)
    a.start()
    b.start()
    topic.produce([quote_message(i) if i % 3 else trade_message(i) for i in range(600)])
    a.wait_archived(600)
    b.wait_archived(600)
    objects = len(a.manifest()) + len(b.manifest())
    (result,) = sql("SELECT * FROM stocks_stream.load_bronze()")
    assert result == (objects, 600, 600, 0, 0)
    assert silver_count(topic.name) == 600 == len(silver_sources(topic.name))


def test_a_killed_load_then_a_rerun_loses_and_duplicates_nothing(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_messages=20, batch_max_age_ms=300)
    p.start()
    topic.produce([trade_message(i) for i in range(4000)])
    p.wait_archived(4000)
    box = {}

    def run():
        try:
            with psycopg.connect(autocommit=True) as conn:
                box["pid"] = conn.info.backend_pid
                conn.execute("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
                box["done"] = True
        except psycopg.Error as e:
            box["error"] = e

    # The loader marks each object's minutes in gold_dirty right after COPYing
    # its rows: holding a lock that conflicts with that INSERT stops it there,
    # mid-call, with rows written, so it is always killed at the same point.
    with psycopg.connect() as blocker:
        blocker.execute("LOCK TABLE stocks_stream.gold_dirty IN SHARE MODE")
        t = threading.Thread(target=run)
        t.start()
        wait_until(lambda: "pid" in box and sql_value(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted "
            "AND relation = 'stocks_stream.gold_dirty'::regclass)", [box["pid"]]),
            60, "the loader to have copied rows and wait for gold_dirty")
        assert sql_value("SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE l.pid = %s AND l.granted AND l.mode = 'RowExclusiveLock' "
                         "AND c.relname LIKE 'trades%%')", [box["pid"]]), "the loader has written trades"
        sql("SELECT pg_terminate_backend(%s)", [box["pid"]])
        t.join(60)
        blocker.rollback()
    assert "error" in box and "done" not in box, "the loader was killed mid-call"
    assert silver_count(topic.name) == 0       # the whole call rolled back
    r = load(p)
    assert silver_count(topic.name) == 4000 == len(silver_sources(topic.name))
    assert r.rows_duplicate == 0


def test_objects_fail_while_s3_is_down_and_load_once_it_is_back(topic, make_pipeline, no_retry_backoff):
    p = make_pipeline(topic, batch_max_messages=100, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) for i in range(500)])
    p.wait_archived(500)
    p.stop()
    n = len(p.manifest())
    stack("stop-minio")
    try:
        r = load(p)
        assert (r.objects_loaded, r.rows_loaded, r.objects_failed) == (0, 0, n)
        errors = sql("SELECT load_error, load_attempts FROM stocks_stream.manifest WHERE pipeline = %s",
                     [p.name])
        assert all(e.load_error and "S3 GET" in e.load_error and e.load_attempts == 1 for e in errors)
    finally:
        stack("start-minio")
    r = load(p)
    assert (r.objects_loaded, r.rows_loaded, r.objects_failed) == (n, 500, 0)
    assert sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s AND load_error IS NOT NULL",
                     [p.name]) == 0


def test_prefix_backfill_loads_old_pipeline_objects_once():
    bucket = "legacy-" + uuid.uuid4().hex[:8]
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    objects = {}
    base = 1700000000 + int(uuid.uuid4().int % 50000000)   # keys name a quote: new ones per run
    for i, sym in enumerate(["AAPL", "MSFT", "NVDA"]):
        q = {"c": 100.5 + i, "d": 1.5, "dp": 1.51, "h": 102.0 + i, "l": 99.0 + i, "o": 100.0 + i,
             "pc": 99.0 + i, "t": base + i, "symbol": sym, "fetched_time": base + 5 + i}
        key = f"{sym}/{base + 5 + i}.json"
        # the Python pipeline wrote json.dumps(quote); one object pretty-printed
        objects[key] = json.dumps(q, indent=2 if sym == "NVDA" else None)
    objects[f"TSLA/{base + 9}.json"] = json.dumps({"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0,
                                                   "t": 0, "symbol": "TSLA", "fetched_time": base + 9})
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    s3.put_object(Bucket=bucket, Key="README.txt", Body=b"not bronze")

    (result,) = sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [bucket])
    assert result == (4, 3, 0, 1, 0)
    got = sql("SELECT source_topic, symbol, price, day_high, extract(epoch FROM quote_time)::bigint, "
              "extract(epoch FROM fetched_at)::bigint FROM stocks_stream.quotes WHERE source_topic = ANY(%s) "
              "ORDER BY symbol", [list(objects)])
    assert [(r.source_topic, r.symbol, r.price) for r in got] == [(f"AAPL/{base + 5}.json", "AAPL", 100.5),
                                                (f"MSFT/{base + 6}.json", "MSFT", 101.5),
                                                (f"NVDA/{base + 7}.json", "NVDA", 102.5)]
    assert [r[4:] for r in got] == [(base, base + 5), (base + 1, base + 6), (base + 2, base + 7)]
    reason = sql("SELECT reason FROM stocks_stream.quarantine WHERE bucket = %s", [bucket])
    assert reason == [('price ("c") is not greater than 0',)]
    assert sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [bucket]) == [(0, 0, 0, 0, 0)]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_prefix_backfill_rebuilds_without_a_manifest(topic, make_pipeline, gzip):
    p = make_pipeline(topic, batch_max_messages=200, batch_max_age_ms=300, gzip=gzip)
    p.start()
    topic.produce([trade_message(i) for i in range(1000)])
    p.wait_archived(1000)
    p.stop()
    sql("DELETE FROM stocks_stream.manifest WHERE pipeline = %s", [p.name])
    (r,) = sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, %s)", [p.bucket, "bronze/" + topic.name + "/"])
    assert (r.rows_loaded, r.rows_duplicate, r.rows_quarantined, r.objects_failed) == (1000, 0, 0, 0)
    assert r.objects_loaded >= 5
    assert silver_sources(topic.name) == set(topic.produced)
    assert sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [p.bucket]) == [(0, 0, 0, 0, 0)]


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_realtime_pipeline_loads_silver_as_it_archives(topic, make_pipeline, fmt):
    p = make_pipeline(topic, batch_max_age_ms=200, realtime=True, format=fmt)
    p.start()
    topic.produce([trade_message(i) for i in range(500)])
    wait_until(lambda: silver_count(topic.name) == 500, 60, "500 trades in silver without a load_bronze call")
    assert silver_sources(topic.name) == set(topic.produced)
    assert {r.object_key.rsplit(".", 1)[1] for r in p.manifest()} == {fmt}
    assert sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s AND loaded_at IS NULL",
                     [p.name]) == 0
    # a later batch call finds nothing left
    r = load(p)
    assert (r.objects_loaded, r.rows_loaded) == (0, 0)


def test_realtime_load_does_not_wait_for_a_load_in_another_session(topic, make_pipeline):
    # another session is in the middle of a load of the same day (its
    # transaction has checked the day's partitions and is still open)
    day = sql_value("SELECT (to_timestamp(%s / 1000.0) AT TIME ZONE 'UTC')::date", [1764000000000])
    sql("SELECT stocks_stream.ensure_day_partition(%s)", [day])
    with psycopg.connect() as other:
        other.execute("SELECT stocks_stream.ensure_day_partition(%s)", [day])
        p = make_pipeline(topic, batch_max_age_ms=200, realtime=True)
        p.start()
        topic.produce([trade_message(i) for i in range(200)])
        wait_until(lambda: silver_count(topic.name) == 200, 60,
                   "the real-time load while another session's load transaction is open")
        other.rollback()


def test_realtime_pipeline_keeps_gold_fresh_for_the_last_minutes(topic, make_pipeline):
    symbol = "RTG" + uuid.uuid4().hex[:5].upper()
    now_ms = int(sql_value("SELECT extract(epoch FROM now()) * 1000"))
    live = [json.dumps({"s": symbol, "p": 10 + i, "t": now_ms - i, "v": 1}) for i in range(50)]
    # an hour old: a backfill's minute, left to the scheduled refresh_gold()
    old = [json.dumps({"s": symbol, "p": 10, "t": now_ms - 3600 * 1000, "v": 1})]
    p = make_pipeline(topic, batch_max_age_ms=200, realtime=True)
    p.start()
    topic.produce(live + old)

    def live_candles():
        return sql_value("SELECT coalesce(sum(sample_count), 0) FROM stocks_stream.candles "
                         "WHERE symbol = %s AND interval = '1m' AND bucket_start > now() - interval '10 minutes'",
                         [symbol])
    wait_until(lambda: live_candles() == 50, 60, "1m candles counting the live trades, no refresh_gold() called")
    assert sql_value("SELECT count(*) FROM stocks_stream.candles WHERE symbol = %s AND interval = '1d'",
                     [symbol]) >= 1
    old_minute = "SELECT count(*) FROM stocks_stream.candles WHERE symbol = %s AND interval = '1m' " \
                 "AND bucket_start < now() - interval '30 minutes'"
    assert sql_value(old_minute, [symbol]) == 0
    sql("SELECT stocks_stream.refresh_gold()")
    assert sql_value(old_minute, [symbol]) == 1


def test_gold_refreshes_run_one_at_a_time_and_a_worker_does_not_wait():
    recent = "SELECT stocks_stream.refresh_gold(now() - interval '10 minutes', wait => false)"
    with psycopg.connect() as other:
        other.execute("SELECT stocks_stream.refresh_gold()")  # its transaction is still open
        assert sql_value(recent) is None, "a refresh ran beside another"
        other.rollback()
    assert sql_value(recent) is not None


@pytest.fixture
def year_of_partitions():
    """A database of its own whose silver has a daily partition for each day of a year."""
    db = "year_" + uuid.uuid4().hex[:8]
    sql(f"CREATE DATABASE {db}")
    try:
        with psycopg.connect(dbname=db, autocommit=True) as conn:
            conn.execute("SET client_min_messages = error")  # the launcher does not serve it: a warning
            conn.execute("CREATE EXTENSION stocks_stream")
            conn.execute("SELECT stocks_stream.ensure_day_partition(d::date) FROM generate_series("
                         "date '2024-11-24', date '2025-11-24', interval '1 day') d")
            yield conn
    finally:
        sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_a_year_of_daily_partitions_loads_and_deduplicates(year_of_partitions):
    # 200 objects of 10 trades, many GETs in flight: each object's look for
    # offsets silver holds reads the partitions of its own days, and the
    # backend neither runs out of file descriptors nor crashes
    conn, s3, bucket, topic = year_of_partitions, s3_client(), "year-" + uuid.uuid4().hex[:8], "t_year"
    s3.create_bucket(Bucket=bucket)
    t0 = 1764000000000  # 2025-11-24
    for i in range(200):
        lines = [json.dumps({"s": "YEAR", "p": 10, "t": t0 + i * 10 + j, "v": 1}) for j in range(10)]
        s3.put_object(Bucket=bucket, Body=("\n".join(lines) + "\n").encode(),
                      Key=f"bronze/{topic}/dt=2025-11-24/hour=16/0-{i * 10:020d}-{i * 10 + 9:020d}.ndjson")
    backfill = conn.cursor(row_factory=named_row)
    first = backfill.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, %s)",
                             [bucket, f"bronze/{topic}/"]).fetchone()
    assert (first.objects_loaded, first.rows_loaded, first.objects_failed) == (200, 2000, 0)
    # an object overlapping two loaded ones (offsets 5..14) adds nothing twice
    lines = [json.dumps({"s": "YEAR", "p": 10, "t": t0 + o, "v": 1}) for o in range(5, 15)]
    s3.put_object(Bucket=bucket, Body=("\n".join(lines) + "\n").encode(),
                  Key=f"bronze/{topic}/dt=2025-11-24/hour=16/0-{5:020d}-{14:020d}.ndjson")
    again = backfill.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, %s)",
                             [bucket, f"bronze/{topic}/"]).fetchone()
    assert (again.objects_loaded, again.rows_loaded, again.rows_duplicate) == (1, 0, 10)
    assert conn.execute("SELECT count(*) FROM stocks_stream.trades").fetchone()[0] == 2000


def test_a_year_of_daily_partitions_deduplicates_old_pipeline_objects(year_of_partitions):
    # the old pipeline's objects (one quote each) load in groups, each
    # looked up in its own day's partition: the same quotes under a second
    # bucket are all duplicates
    conn, s3 = year_of_partitions, s3_client()
    backfill = conn.cursor(row_factory=named_row)
    results = []
    for bucket in ("old-a-" + uuid.uuid4().hex[:8], "old-b-" + uuid.uuid4().hex[:8]):
        s3.create_bucket(Bucket=bucket)
        for i in range(50):
            t = 1764000000 + i * 600
            s3.put_object(Bucket=bucket, Key=f"OLDQ/{t}.json", Body=json.dumps(
                {"c": 100.5, "d": 0.5, "dp": 0.5, "h": 101, "l": 99, "o": 100, "pc": 100, "t": t,
                 "symbol": "OLDQ"}, indent=2).encode())
        results.append(backfill.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')",
                                        [bucket]).fetchone())
    assert [(r.objects_loaded, r.rows_loaded, r.rows_duplicate) for r in results] == [(50, 50, 0), (50, 0, 50)]
