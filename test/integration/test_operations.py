"""Exactly once through what operators do: restarting the launcher, killing
a worker or the postmaster, a second instance in the same consumer group, a
writer that stalls past its session and wakes up (a zombie), pg_dump and
pg_restore, and ALTER EXTENSION ... UPDATE from the released 0.1.0.

Each test counts what was produced to Kafka, archived, duplicated and
lost, and keeps the counts in .stack/operations-report.jsonl."""
import concurrent.futures
import os
import signal
import subprocess
import threading
import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer

from operations_support import Instance, account, manifest_rows, report
from stack_support import (BROKERS, Source, Topic, bucket_objects, caught_up, holds_for, high_watermarks, kafka_committed,
                           quote_message, s3_client, set_settings, sql, sql_value, stack, wait_until)

APP = {"archive": "stocks_stream archive {name}/%", "ingest": "stocks_stream ingest {name}"}


def running_workers(kind, name, run_sql=sql):
    """Backends of one pipeline's archive workers, or of one source's ingest worker."""
    return run_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                   [APP[kind].format(name=name)])[0][0]


def launcher_pid(run_sql=sql):
    rows = run_sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'stocks_stream launcher'")
    return rows[0][0] if len(rows) == 1 else None


@pytest.fixture
def instances():
    made = []

    def make(label):
        inst = Instance(label)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.drop()


class Producer(threading.Thread):
    """Produces `total` quote messages at about `rate` a second in the background."""

    def __init__(self, topic, total, rate, start_at=0):
        super().__init__(daemon=True)
        self.topic, self.total, self.rate, self.start_at = topic, total, rate, start_at
        self.error = None

    def run(self):
        try:
            p = self.topic.producer()
            chunk = max(1, self.rate // 10)
            for i in range(self.start_at, self.start_at + self.total, chunk):
                n = min(chunk, self.start_at + self.total - i)
                self.topic.produce([quote_message(j) for j in range(i, i + n)], producer=p)
                time.sleep(0.1)
        except Exception as e:  # surfaced by finish()
            self.error = e

    def finish(self, timeout=300):
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        assert self.error is None, f"the producer failed: {self.error}"
        assert self.topic.failed == 0


# --- one worker per slot, whatever is killed ---------------------------------------------

def terminate_launcher():
    old = launcher_pid()
    sql("SELECT pg_terminate_backend(%s)", [old])
    wait_until(lambda: launcher_pid() not in (None, old), 60, "a new launcher")


def kill_archive_worker(pipeline):
    pid = sql_value("SELECT pid FROM stocks_stream.worker_status WHERE pipeline = %s AND worker = 0", [pipeline])
    os.kill(pid, signal.SIGKILL)


def restart_postmaster_immediately():
    stack("pg-restart-immediate")


@pytest.mark.parametrize("what", ["terminate the launcher", "SIGKILL an archive worker",
                                  "restart the postmaster -m immediate"])
def test_one_worker_per_slot_whatever_is_killed(what, make_pipeline):
    t = Topic()
    p = make_pipeline(t, workers=2, batch_max_age_ms=300, batch_max_messages=2000)
    src = Source("simulator", ["AAPL", "MSFT"], t.name, options={"seed": 7, "rate": 2000, "max_messages": 30000})
    try:
        p.start()
        src.start()
        wait_until(lambda: p.archived_count() > 2000, 120, "the first messages archived")
        if what == "terminate the launcher":
            terminate_launcher()
        elif what == "SIGKILL an archive worker":
            kill_archive_worker(p.name)
        else:
            restart_postmaster_immediately()
        wait_until(lambda: running_workers("archive", p.name) == 2 and running_workers("ingest", src.name) == 1,
                   90, "the workers to run again")
        # never a second worker beside them, for a while after they came back
        holds_for(lambda: running_workers("archive", p.name) <= 2 and running_workers("ingest", src.name) <= 1,
                  8, "one worker per pipeline slot and per source")
        wait_until(lambda: (src.status() or {}).get("state") == "done", 180, "the simulator to finish")
        src.stop_and_wait()   # nothing is produced from here on
        wait_until(lambda: caught_up(p.name, t), 120, "everything produced to be archived")
    finally:
        src.drop()
    counts = account(t, manifest_rows(sql, p.name), p.bucket)
    report(f"one worker per slot: {what}", **counts)
    assert counts["produced"] > 30000 - 1
    assert counts["duplicated"] == 0 and counts["lost"] == 0
    assert counts["archived"] == counts["produced"]


# --- many instances, one consumer group --------------------------------------------------

def test_second_instance_in_the_group_archives_nothing_twice(instances):
    a, b = instances("a"), instances("b")
    for inst in (a, b):
        inst.sql("CREATE EXTENSION stocks_stream")
    t = Topic()
    name, bucket = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10]
    for inst in (a, b):
        inst.sql("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300, "
                 "batch_max_messages => 2000)", [name, t.name, bucket])
    archived = {inst: (lambda i=inst: i.value("SELECT coalesce(sum(message_count), 0)::bigint FROM stocks_stream.manifest"))
                for inst in (a, b)}
    producer = Producer(t, total=80000, rate=4000)
    producer.start()
    a.sql("SELECT stocks_stream.start_pipeline(%s)", [name])
    wait_until(lambda: archived[a]() >= 10000, 120, "instance a to archive")
    b.sql("SELECT stocks_stream.start_pipeline(%s)", [name])  # joins mid-stream
    wait_until(lambda: archived[b]() >= 5000, 120, "instance b to take its share")
    a.sql("SELECT stocks_stream.stop_pipeline(%s)", [name])   # the first stops later
    producer.finish()
    wait_until(lambda: sum(f() for f in archived.values()) >= 80000 and caught_up(name, t, b.sql), 180,
               "every message archived by one instance or the other")
    b.sql("SELECT stocks_stream.stop_pipeline(%s)", [name])
    counts = account(t, manifest_rows(a.sql, name) + manifest_rows(b.sql, name), bucket)

    # one warehouse database loads what both instances wrote, from S3
    a.sql("CREATE DATABASE warehouse")
    a.sql("CREATE EXTENSION stocks_stream", db="warehouse")
    loaded = a.sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, 'bronze')", [bucket], db="warehouse")[0]
    silver = a.sql("SELECT count(*) AS n, count(DISTINCT (source_partition, source_offset)) AS distinct_n "
                   "FROM stocks_stream.quotes",
                   db="warehouse")[0]
    report("two instances, one group", **counts, by_a=archived[a](), by_b=archived[b](),
           warehouse_rows=silver[0], warehouse_duplicates_skipped=loaded.rows_duplicate)
    assert counts["produced"] == 80000
    assert counts["duplicated"] == 0 and counts["lost"] == 0 and counts["archived"] == 80000
    assert archived[a]() > 0 and archived[b]() > 0
    assert loaded.objects_failed == 0 and loaded.rows_quarantined == 0
    assert silver[0] == silver[1] == 80000


# --- a zombie writer ----------------------------------------------------------------------

def worker_pid(pipeline, worker):
    rows = sql("SELECT pid FROM stocks_stream.worker_status WHERE pipeline = %s AND worker = %s", [pipeline, worker])
    return rows[0][0] if rows else None


def assert_archived_once(p, t, produced, what):
    """Every message produced to the topic is in the pipeline's objects, once; the counts are reported."""
    counts = account(t, manifest_rows(sql, p.name), p.bucket)
    report(what, **counts)
    assert counts["produced"] == produced
    assert counts["duplicated"] == 0 and counts["lost"] == 0 and counts["archived"] == produced


def test_zombie_writer_never_replaces_a_good_object(make_pipeline):
    """Worker 0 holds an object it could not PUT (S3 is down), stalls past
    its session (SIGSTOP), worker 1 takes its partitions over and archives
    them from the stored offsets, then worker 0 wakes up and PUTs its old,
    shorter object of the same first offset."""
    t = Topic()
    p = make_pipeline(t, workers=2, batch_max_age_ms=500, batch_max_messages=100000)
    p.start()
    wait_until(lambda: sorted(w.assigned_partitions for w in p.workers()) == ["0,1", "2,3"], 60,
               "both workers to own two partitions")
    t.produce([quote_message(i) for i in range(4000)])
    p.wait_archived(4000)
    zombie = worker_pid(p.name, 0)
    try:
        stack("stop-minio")
        t.produce([quote_message(i) for i in range(4000, 6000)])
        wait_until(lambda: (sql("SELECT state FROM stocks_stream.worker_status WHERE pipeline = %s AND worker = 0",
                                [p.name]) or [[None]])[0][0] == "waiting for S3", 60, "worker 0 to hold its object")
        os.kill(zombie, signal.SIGSTOP)
    finally:
        stack("start-minio")
    try:
        t.produce([quote_message(i) for i in range(6000, 9000)])
        wait_until(lambda: any(w.assigned_partitions == "0,1,2,3" for w in p.workers() if w.pid != zombie), 90,
                   "worker 1 to take every partition")
        wait_until(lambda: caught_up(p.name, t), 120, "worker 1 to archive everything")
    finally:
        os.kill(zombie, signal.SIGCONT)
    # the zombie wakes up; whatever it does, it must not win
    wait_until(lambda: sorted(w.assigned_partitions for w in p.workers()) in (["", "0,1,2,3"], ["0,1", "2,3"]),
               90, "the zombie to exit or rejoin the group")
    t.produce([quote_message(i) for i in range(9000, 10000)])
    wait_until(lambda: caught_up(p.name, t), 120, "the last messages archived")
    assert_archived_once(p, t, 10000, "zombie writer")
    hw = high_watermarks(t.name, t.partitions)
    assert wait_until(lambda: kafka_committed("stocks_stream." + p.name, t.name, t.partitions) == hw, 30,
                      "the group's committed offsets to reach the end")


def test_partitions_paused_for_s3_are_read_again_when_reassigned(make_pipeline):
    """The worker pauses its partitions while S3 refuses its object; the
    group gives two of them to another member, the worker resumes the rest,
    and the two come back to it.  All four are read again: what was
    produced meanwhile is archived, once (a worker whose session timed out
    while S3 was down stalled so)."""
    t = Topic()
    p = make_pipeline(t, batch_max_age_ms=500)
    p.start()
    wait_until(lambda: [w.assigned_partitions for w in p.workers()] == ["0,1,2,3"], 60, "the worker's assignment")
    t.produce([quote_message(i) for i in range(2000)])
    p.wait_archived(2000)
    other = Consumer({"bootstrap.servers": BROKERS, "group.id": "stocks_stream." + p.name,
                      "enable.auto.commit": False})
    try:
        try:
            stack("stop-minio")
            t.produce([quote_message(i) for i in range(2000, 4000)])
            wait_until(lambda: p.workers()[0].state == "waiting for S3", 60, "the worker to pause its partitions")
            other.subscribe([t.name])
            wait_until(lambda: (other.poll(0.1), other.assignment())[1], 60, "another member's share")
        finally:
            stack("start-minio")
        wait_until(lambda: p.workers()[0].state == "running", 60, "the worker to resume")
    finally:
        other.close()
    wait_until(lambda: p.workers()[0].assigned_partitions == "0,1,2,3", 60, "the partitions back to the worker")
    t.produce([quote_message(i) for i in range(4000, 6000)])
    wait_until(lambda: caught_up(p.name, t), 60, "everything archived")
    assert_archived_once(p, t, 6000, "partitions paused for S3, reassigned")


# --- backups -------------------------------------------------------------------------------

EXTENSION_TABLES = ("SELECT c.relname, format('%I.%I', c.relnamespace::regnamespace, c.relname) FROM pg_depend d "
                    "JOIN pg_class c ON c.oid = d.objid "
                    "WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
                    "AND d.deptype = 'e' AND c.relkind IN ('r', 'p') ORDER BY 1")


def row_counts(inst):
    counts = {}
    for table, qualified in inst.sql(EXTENSION_TABLES):
        counts[table] = inst.value(f"SELECT count(*) FROM {qualified}")
    return counts


def fill(inst, t, name, bucket, messages, first=0):
    """Archive `messages` quotes through a pipeline, load silver, refresh gold."""
    t.produce([quote_message(i, symbol=("AAPL", "MSFT")[i % 2]) for i in range(first, first + messages)])
    inst.sql("SELECT stocks_stream.start_pipeline(%s)", [name])
    wait_until(lambda: caught_up(name, t, inst.sql), 120, "the pipeline to archive everything")
    inst.sql("SELECT stocks_stream.stop_pipeline(%s)", [name])
    wait_until(lambda: running_workers("archive", name, inst.sql) == 0, 60, "the pipeline to stop")
    inst.sql("SELECT * FROM stocks_stream.load_bronze()")
    inst.sql("SELECT stocks_stream.refresh_gold()")


def test_pg_dump_and_restore_keep_everything_and_resume(instances, tmp_path):
    src, dst = instances("dumped"), instances("restored")
    src.sql("CREATE EXTENSION stocks_stream")
    t = Topic()
    name, bucket = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10]
    src.sql("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300)", [name, t.name, bucket])
    src.sql("SELECT stocks_stream.create_source('sim', 'simulator', ARRAY['AAPL'], %s)", [t.name])
    fill(src, t, name, bucket, 3000)
    src.sql("INSERT INTO stocks_stream.quarantine (bucket, object_key, line_number, raw, reason) "
            "VALUES ('b', 'k', 0, 'x', 'a kept bad line')")
    before = row_counts(src)
    assert before["quotes"] == 3000 and before["manifest"] > 0 and before["candles"] > 0

    dump = tmp_path / "stocks.dump"
    pg_bin = os.environ["PG_BIN"]
    subprocess.run([f"{pg_bin}/pg_dump", "-Fc", "-f", str(dump), *src.dsn_args()], check=True)
    restore = subprocess.run([f"{pg_bin}/pg_restore", *dst.dsn_args(), str(dump)], capture_output=True, text=True)
    assert restore.returncode == 0, restore.stderr
    assert "error" not in restore.stderr.lower(), restore.stderr
    after = row_counts(dst)
    report("pg_dump and pg_restore", rows_before=sum(before.values()), rows_after=sum(after.values()),
           tables=len(after))
    assert after == before

    # the restored pipeline resumes from its stored offsets: nothing twice
    fill(dst, t, name, bucket, 2000, first=3000)
    counts = account(t, manifest_rows(dst.sql, name), bucket)
    report("restored instance resumes", **counts)
    assert counts["produced"] == 5000
    assert counts["duplicated"] == 0 and counts["lost"] == 0 and counts["archived"] == 5000
    assert dst.value("SELECT count(*) FROM stocks_stream.quotes") == 5000


# --- upgrading a populated 0.1.0 install ---------------------------------------------------

CATALOG = {
    "functions": "SELECT p.oid::regprocedure::text AS fn, md5(p.prosrc) AS src, p.prosecdef AS definer, "
                 "  coalesce(p.proacl::text, '') AS acl, pg_get_function_result(p.oid) AS result, "
                 "  pg_get_function_arguments(p.oid) AS args, coalesce(p.proconfig::text, '') AS config, "
                 "  p.provolatile AS volatility, p.proisstrict AS strict, p.proparallel AS parallel, "
                 "  pg_get_userbyid(p.proowner) AS owner, coalesce(obj_description(p.oid, 'pg_proc'), '') AS doc "
                 "  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid "
                 " WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
                 "   AND d.deptype = 'e' ORDER BY 1",
    "relations": "SELECT c.oid::regclass::text AS rel, c.relkind AS kind, coalesce(c.relacl::text, '') AS acl, "
                 "  pg_get_userbyid(c.relowner) AS owner, coalesce(obj_description(c.oid, 'pg_class'), '') AS doc, "
                 "  CASE WHEN c.relkind = 'v' THEN md5(pg_get_viewdef(c.oid)) END AS viewdef FROM pg_class c "
                 "  JOIN pg_depend d ON d.objid = c.oid "
                 " WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
                 "   AND d.deptype = 'e' ORDER BY 1",
    "columns": "SELECT a.attrelid::regclass::text AS rel, a.attnum AS position, a.attname AS col, "
               "  format_type(a.atttypid, a.atttypmod) AS type, "
               "  a.attnotnull AS notnull, coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') AS dflt, "
               "  coalesce(col_description(a.attrelid, a.attnum), '') AS doc "
               "  FROM pg_attribute a JOIN pg_depend d ON d.objid = a.attrelid "
               "  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum "
               " WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
               "   AND d.deptype = 'e' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 3",
    "indexes": "SELECT indexrelid::regclass::text AS idx, pg_get_indexdef(indexrelid) AS definition FROM pg_index "
               " WHERE indrelid IN (SELECT objid FROM pg_depend WHERE deptype = 'e' AND refobjid = "
               "   (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream')) ORDER BY 1",
    "constraints": "SELECT conrelid::regclass::text AS rel, conname AS con, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
                   " WHERE conrelid IN (SELECT objid FROM pg_depend WHERE deptype = 'e' AND refobjid = "
                   "   (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream')) ORDER BY 1, 2",
    "triggers": "SELECT tgrelid::regclass::text AS rel, tgname AS trigger, pg_get_triggerdef(oid) AS definition FROM pg_trigger "
                " WHERE NOT tgisinternal AND tgrelid IN (SELECT objid FROM pg_depend WHERE deptype = 'e' AND refobjid = "
                "   (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream')) ORDER BY 1, 2",
    "types": "SELECT t.oid::regtype::text AS type, pg_get_userbyid(t.typowner) AS owner, coalesce(t.typacl::text, '') AS acl, "
             "  coalesce(obj_description(t.oid, 'pg_type'), '') AS doc, (SELECT string_agg(a.attname || ' ' || "
             "  format_type(a.atttypid, a.atttypmod) || ' ' || coalesce(col_description(a.attrelid, a.attnum), ''), ', ' "
             "  ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0) AS columns "
             "  FROM pg_type t JOIN pg_depend d ON d.objid = t.oid "
             " WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stocks_stream') "
             "   AND d.deptype = 'e' ORDER BY 1",
    "schemas": "SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner, coalesce(n.nspacl::text, '') AS acl, "
               "  coalesce(obj_description(n.oid, 'pg_namespace'), '') AS doc FROM pg_namespace n "
               " WHERE n.nspname IN ('stocks_stream', 'api') ORDER BY 1",
    "dumped": "SELECT c::regclass::text AS tbl, w AS condition FROM pg_extension, unnest(extconfig, extcondition) AS x(c, w) "
              " WHERE extname = 'stocks_stream' ORDER BY 1",
    "version": "SELECT extversion FROM pg_extension WHERE extname = 'stocks_stream'",
}


def catalog(inst, db="stocks"):
    return {k: inst.sql(q, db=db) for k, q in CATALOG.items()}


RELEASED = ["0.1.0", "0.2.0", "0.3.0", "0.4.0"]  # every released version an install may be updated from


def default_version():
    return sql("SELECT default_version FROM pg_available_extensions WHERE name = 'stocks_stream'")[0][0]


@pytest.mark.parametrize("released", RELEASED)
def test_alter_extension_update_from_a_released_version(instances, released):
    u = instances("upgraded")
    u.sql(f"CREATE EXTENSION stocks_stream VERSION '{released}'")
    t = Topic()
    name, bucket = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10]
    u.sql("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300)", [name, t.name, bucket])
    fill(u, t, name, bucket, 3000)
    u.sql("SELECT stocks_stream.start_pipeline(%s)", [name])  # running through the update
    wait_until(lambda: running_workers("archive", name, u.sql) == 1, 60, "the worker to run")
    before = row_counts(u)
    offsets_before = u.sql("SELECT partition, next_offset FROM stocks_stream.offsets ORDER BY 1")

    u.sql("ALTER EXTENSION stocks_stream UPDATE")
    # 0.2.0 puts daily bars on the exchange's day: the update marks those of
    # symbols not on UTC days for rebuilding, which the next refresh does
    u.sql("SELECT stocks_stream.refresh_gold()")
    after = row_counts(u)
    assert u.value("SELECT extversion FROM pg_extension WHERE extname = 'stocks_stream'") == default_version()
    assert {k: after[k] for k in before} == before, "the update lost or added rows"
    assert u.sql("SELECT partition, next_offset FROM stocks_stream.offsets ORDER BY 1") == offsets_before

    # the same objects, code, grants and api as a fresh install
    u.sql("CREATE DATABASE fresh")
    u.sql("CREATE EXTENSION stocks_stream", db="fresh")
    upgraded, fresh = catalog(u), catalog(u, db="fresh")
    for what in CATALOG:
        assert upgraded[what] == fresh[what], f"{what} differ between the updated and a fresh install"

    # and the workers go on: more messages, archived and loaded once
    t.produce([quote_message(i) for i in range(3000, 5000)])
    wait_until(lambda: caught_up(name, t, u.sql), 120, "the worker to archive after the update")
    loaded = u.sql("SELECT * FROM stocks_stream.load_bronze()")[0]
    u.sql("SELECT stocks_stream.refresh_gold()")
    counts = account(t, manifest_rows(u.sql, name), bucket)
    report(f"ALTER EXTENSION UPDATE {released} -> {default_version()}", **counts, rows_before=sum(before.values()),
           rows_after=sum(after.values()), catalog_items=sum(len(v) for v in fresh.values()))
    assert counts["duplicated"] == 0 and counts["lost"] == 0 and counts["archived"] == 5000
    assert loaded.objects_failed == 0
    assert u.value("SELECT count(*) FROM stocks_stream.quotes") == 5000


# --- a database no launcher serves -----------------------------------------------------------

def test_database_no_launcher_serves_warns_and_refuses_to_start():
    db = "unserved_" + uuid.uuid4().hex[:6]
    sql(f"CREATE DATABASE {db}")
    try:
        with psycopg.connect(dbname=db, autocommit=True) as conn:
            notices = []
            # a notice's fields are only readable inside the handler
            conn.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary, d.message_hint)))
            conn.execute("CREATE EXTENSION stocks_stream")
            warning = [n for n in notices if n[0] == "WARNING"]
            assert warning and f'no stocks_stream launcher serves database "{db}"' in warning[0][1]
            assert f"stocks_stream.database = '{db}'" in warning[0][2]
            conn.execute("SELECT stocks_stream.create_pipeline('p', 'quotes', 'bronze')")
            conn.execute("SELECT stocks_stream.create_source('s', 'simulator', ARRAY['AAPL'])")
            for call in ("start_pipeline('p')", "start_source('s')"):
                with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
                    conn.execute(f"SELECT stocks_stream.{call}")
                assert "no stocks_stream launcher serves" in e.value.diag.message_primary
                assert f"stocks_stream.database = '{db}'" in e.value.diag.message_hint
            assert conn.execute("SELECT bool_or(running) FROM stocks_stream.pipelines").fetchone()[0] is False
    finally:
        sql(f"DROP DATABASE {db} WITH (FORCE)")


# --- a warehouse loading what the instances archived ----------------------------------------

@pytest.fixture
def warehouse():
    """A database of the stack's cluster that no launcher serves: it only loads."""
    db = "warehouse_" + uuid.uuid4().hex[:6]
    sql(f"CREATE DATABASE {db}")
    with psycopg.connect(dbname=db, autocommit=True) as conn:
        conn.execute("SET client_min_messages = error")
        conn.execute("CREATE EXTENSION stocks_stream")
        yield conn
    sql(f"DROP DATABASE {db} WITH (FORCE)")


def test_incremental_listing_loads_each_new_object_once(warehouse, make_pipeline):
    t = Topic(partitions=2)
    p = make_pipeline(t, batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(i) for i in range(1000)])
    p.wait_archived(1000)

    def load(lookback):
        return warehouse.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, 'bronze', %s)",
                                 [p.bucket, lookback]).fetchone()

    first = load("1 hour")
    assert (first[1], first[2], first[4]) == (1000, 0, 0)   # rows loaded, duplicate, objects failed
    marks = warehouse.execute("SELECT folder FROM stocks_stream.listing_marks WHERE bucket = %s",
                              [p.bucket]).fetchall()
    assert marks == [(f"bronze/{t.name}/",)]

    t.produce([quote_message(i) for i in range(1000, 1500)])
    p.wait_archived(1500)
    again = load("1 hour")
    assert (again[1], again[2], again[4]) == (500, 0, 0)
    assert load("1 hour")[:2] == (0, 0)                     # nothing new: nothing loaded

    # an object written into an hour older than the lookback (an instance
    # that lagged for a day) is found by a listing without lookback
    late_key = f"bronze/{t.name}/dt=2025-11-23/hour=00/1-{5000:020d}-{5001:020d}.ndjson"
    body = (quote_message(5000) + "\n" + quote_message(5001) + "\n").encode()
    s3_client().put_object(Bucket=p.bucket, Key=late_key, Body=body)
    assert load("1 hour")[1] == 0
    assert load(None)[1] == 2
    assert warehouse.execute("SELECT count(*), count(DISTINCT (source_partition, source_offset)) "
                             "FROM stocks_stream.quotes").fetchone() == (1502, 1502)


# --- settings reloads ------------------------------------------------------------------------

def test_new_kafka_settings_restart_every_worker_that_uses_kafka(make_pipeline):
    """Archive and ingest workers alike take new Kafka settings: a reload
    that changes them restarts both (a Kafka client cannot change its own)."""
    t = Topic()
    p = make_pipeline(t, batch_max_age_ms=300)
    src = Source("simulator", ["AAPL"], t.name, options={"seed": 3, "rate": 200})
    try:
        p.start()
        src.start()
        wait_until(lambda: p.workers() and (src.status() or {}).get("state") == "running", 60, "both workers")
        archive_pid, ingest_pid = p.workers()[0].pid, src.status()["pid"]
        set_settings(kafka_properties="linger.ms=7")
        # one look at the workers per try: a worker may exit between two looks
        wait_until(lambda: (w := p.workers()) and w[0].pid != archive_pid and
                   (src.status() or {}).get("pid") not in (None, ingest_pid), 60,
                   "both workers to restart with the new settings")
    finally:
        set_settings(kafka_properties=None)
        src.drop()


def leave_unrecorded_objects(t, bucket, partitions):
    """100 messages in each partition, and in S3 for each an object of its
    first 40 - p % 30 messages that no manifest names (a worker put it, then
    stopped before its record).  Returns the messages and, per partition,
    that object's key and last offset."""
    stamp = int(time.time() * 1000)
    values = [quote_message(i).encode() for i in range(100)]
    producer = t.producer()
    for part in range(partitions):
        for v in values:
            producer.produce(t.name, value=v, key=b"k", partition=part, timestamp=stamp)
    assert producer.flush(30) == 0
    day, hour = time.strftime("%Y-%m-%d %H", time.gmtime(stamp / 1000)).split()
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    left = {}
    for part in range(partitions):
        end = 39 - part % 30
        left[part] = (f"bronze/{t.name}/dt={day}/hour={hour}/{part}-{0:020d}-{end:020d}.ndjson", end)
        s3.put_object(Bucket=bucket, Key=left[part][0], Body=b"\n".join(values[:end + 1]) + b"\n")
    return values, left


def assert_first_objects_end_where_unrecorded_ones_did(name, left):
    manifest = manifest_rows(sql, name)
    for part, (key, end) in left.items():
        rows = sorted((r for r in manifest if r.partition == part), key=lambda r: r.first_offset)
        assert rows[0].object_key == key
        assert [(r.first_offset, r.last_offset) for r in rows] == [(0, end), (end + 1, 99)]
    return manifest


@pytest.mark.parametrize("partitions", [1, 64])
def test_an_object_put_but_never_recorded_is_written_again_not_beside(make_pipeline, partitions):
    """A worker that stopped between its PUT and its record left an object no
    manifest names.  The worker that resumes there ends its first batch where
    that object ends: the same key and bytes again, no overlapping object.
    With many partitions, each with such an object of its own length, every
    one is matched (one listing of their hour's folder answers them all)."""
    t = Topic(partitions=partitions)
    p = make_pipeline(t, batch_max_age_ms=300, batch_max_messages=100000)
    values, left = leave_unrecorded_objects(t, p.bucket, partitions)
    p.start()
    wait_until(lambda: caught_up(p.name, t), 120, "everything archived")
    manifest = assert_first_objects_end_where_unrecorded_ones_did(p.name, left)
    t.produced = {(part, i): v for part in range(partitions) for i, v in enumerate(values)}
    counts = account(t, manifest, p.bucket)
    assert counts == {"produced": 100 * partitions, "archived": 100 * partitions, "duplicated": 0, "lost": 0,
                      "orphan_objects": 0}


def test_an_object_put_but_never_recorded_is_found_in_a_folder_of_a_page_or_more(make_pipeline):
    """When the hour's folder holds a page of keys or more (S3 lists 1,000 at
    a time), its listing cannot answer for every partition: a partition
    whose key is past the first page lists where its own object would start
    instead, and still finds the unrecorded one."""
    t = Topic(partitions=3)
    p = make_pipeline(t, batch_max_age_ms=300, batch_max_messages=100000)
    values, left = leave_unrecorded_objects(t, p.bucket, 3)
    folder = left[0][0].rsplit("/", 1)[0]
    # objects of partition 1 past its last offset: no one's to match, and in
    # key order they come before partition 2's, which is then past the first page
    crowd = [f"{folder}/1-{o:020d}-{o:020d}.ndjson" for o in range(1000, 2000)]
    s3 = s3_client()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=p.bucket, Key=key, Body=values[0] + b"\n"), crowd))
    p.start()
    wait_until(lambda: caught_up(p.name, t), 120, "everything archived")
    assert_first_objects_end_where_unrecorded_ones_did(p.name, left)
    objects = set(bucket_objects(p.bucket)) - set(crowd)
    assert objects == {r.object_key for r in manifest_rows(sql, p.name)}
