"""The lake's Iceberg tables (docs/lake.md, "Iceberg tables"): scripts/lake-commit,
run as Airflow's login, registers every bronze Parquet object of a pipeline
and every verified tiered silver object in Iceberg (v2) tables whose
catalog is the schema stocks_stream_lake, each object in exactly one
snapshot even when the commit is killed at each point of its work; DuckDB
(its iceberg extension loaded offline) and pyiceberg read the tables and
answer as silver does."""
import datetime as dt
import importlib.util
import io
import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo

from stack_support import ROOT, Pipeline, Topic, s3_client, sql, sql_value

sys.path.insert(0, os.path.join(ROOT, "lake", "iceberg"))
import stocks_stream_lake as lake  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "NVDA")
DAYS = 3
PER_STAGE = 240                     # messages per stage: a third quotes, spread over DAYS days
STAGES = (*lake.CRASH_POINTS, None)  # one stage per crash point, and a clean one
COMMITTER = "stocks_airflow"        # the DAG's login: an operator, not a superuser
START = dt.datetime(2025, 11, 20, 14, 30, tzinfo=dt.timezone.utc)

# The tiering contract's Parquet columns (docs/lake.md), as the tiering writes them
SILVER_ARROW = {
    "trades": pa.schema([
        pa.field("symbol", pa.string(), False), pa.field("trade_time", pa.timestamp("us", "UTC"), False),
        pa.field("price", pa.float64(), False), pa.field("volume", pa.float64(), False),
        pa.field("conditions", pa.list_(pa.string())), pa.field("source_topic", pa.string(), False),
        pa.field("source_partition", pa.int32(), False), pa.field("source_offset", pa.int64(), False),
        pa.field("loaded_at", pa.timestamp("us", "UTC"), False)]),
    "quotes": pa.schema([
        pa.field("symbol", pa.string(), False), pa.field("quote_time", pa.timestamp("us", "UTC"), False),
        pa.field("price", pa.float64(), False), pa.field("change", pa.float64()),
        pa.field("change_pct", pa.float64()), pa.field("day_high", pa.float64(), False),
        pa.field("day_low", pa.float64(), False), pa.field("day_open", pa.float64(), False),
        pa.field("prev_close", pa.float64(), False), pa.field("fetched_at", pa.timestamp("us", "UTC")),
        pa.field("source_topic", pa.string(), False), pa.field("source_partition", pa.int32(), False),
        pa.field("source_offset", pa.int64(), False), pa.field("loaded_at", pa.timestamp("us", "UTC"), False)]),
}
TIME = lake.SILVER_TIME

# stocks_stream.lake_objects as the tiering contract makes it; the tiering
# code makes it in the extension, so here it exists already once that is in
LAKE_OBJECTS = """CREATE TABLE IF NOT EXISTS stocks_stream.lake_objects (
    lake_object_id bigserial PRIMARY KEY,
    table_name text NOT NULL CHECK (table_name IN ('quotes', 'trades')),
    day date NOT NULL, bucket text NOT NULL, object_key text NOT NULL,
    row_count bigint NOT NULL, bytes bigint NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(), verified_at timestamptz, iceberg_snapshot_id bigint,
    UNIQUE (bucket, object_key))"""


def message(stage, i):
    """Message i of a stage: trades and quotes of SYMBOLS over DAYS days."""
    at = START + dt.timedelta(days=i // 9 % DAYS, seconds=stage * 1000 + i)
    symbol = SYMBOLS[i // 3 % len(SYMBOLS)]
    if i % 3 == 0:
        return json.dumps({"c": 150 + i / 100, "d": 0.5, "dp": 0.33, "h": 400.0, "l": 100.0, "o": 150.1,
                           "pc": 149.6, "t": int(at.timestamp()), "symbol": symbol}, separators=(",", ":"))
    return json.dumps({"s": symbol, "p": round(300 + stage + i / 100, 2), "t": int(at.timestamp() * 1000),
                       "v": i % 50 + 1, "c": ["1", "12"]}, separators=(",", ":"))


def commit(crash_at=None):
    env = dict(os.environ, PGUSER=COMMITTER)
    env.pop(lake.CRASH_ENV, None)
    if crash_at:
        env[lake.CRASH_ENV] = crash_at
    return subprocess.run([os.path.join(ROOT, "scripts", "lake-commit")], env=env, capture_output=True,
                          text=True, timeout=600)


def catalog(user=COMMITTER):
    """pyiceberg's SqlCatalog on the extension's schema, as `user`."""
    return SqlCatalog(lake.CATALOG_NAME, uri=lake.catalog_uri(user), init_catalog_tables="false",
                      **lake.s3_properties())


def tier(topic, bucket, stage, written):
    """Stand-in for the tiering until it is merged: the silver rows of the
    topic not yet written go to one Parquet object per table and day (the
    contract's key, n = stage + 1), recorded as verified lake_objects."""
    s3 = s3_client()
    for table, schema in SILVER_ARROW.items():
        cols = ", ".join(f.name for f in schema)
        rows = [r for r in sql(f"SELECT {cols} FROM stocks_stream.{table} WHERE source_topic = %s "
                               f"ORDER BY symbol, {TIME[table]}", [topic])
                if (table, r.source_partition, r.source_offset) not in written]
        by_day = defaultdict(list)
        for r in rows:
            by_day[getattr(r, TIME[table]).astimezone(dt.timezone.utc).date()].append(r._asdict())
            written.add((table, r.source_partition, r.source_offset))
        for day, day_rows in sorted(by_day.items()):
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(day_rows, schema), buf, compression="zstd")
            key = f"lake/silver/{table}/day={day}/{table}-{day}-{stage + 1}.parquet"
            s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
            sql("INSERT INTO stocks_stream.lake_objects (table_name, day, bucket, object_key, row_count, bytes, "
                "verified_at) VALUES (%s, %s, %s, %s, %s, %s, now())",
                [table, day, bucket, key, len(day_rows), buf.tell()])


def unreferenced_metadata(cat, identifier):
    """The metadata files in a table's folder that its catalog entry does not
    know of (those of commits that never reached the catalog)."""
    table = cat.load_table(identifier)
    bucket, prefix = table.location()[len("s3://"):].split("/", 1)
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/metadata/")
    written = {f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])
               if o["Key"].endswith(".metadata.json")}
    return written - {e.metadata_file for e in table.metadata.metadata_log} - {table.metadata_location}


def lake_tables():
    return [(r.table_namespace, r.table_name) for r in sql(
        "SELECT table_namespace, table_name FROM stocks_stream_lake.iceberg_tables WHERE catalog_name = %s",
        [lake.CATALOG_NAME])]


@pytest.fixture(scope="module")
def lake_run():
    """A Parquet pipeline archives and loads PER_STAGE messages per stage;
    each stage's new silver rows are tiered; then lake-commit is killed at
    the stage's crash point and run again."""
    sql(LAKE_OBJECTS)
    topic = Topic()
    p = Pipeline(topic, format="parquet", batch_max_age_ms=300)
    bucket = "l-" + uuid.uuid4().hex[:10]
    s3_client().create_bucket(Bucket=bucket)
    written, stages = set(), {}
    try:
        p.start()
        for stage, point in enumerate(STAGES):
            topic.produce([message(stage, i) for i in range(PER_STAGE)])
            p.wait_archived(PER_STAGE * (stage + 1))
            sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
            tier(topic.name, bucket, stage, written)
            cat = catalog()
            unreferenced = {t: unreferenced_metadata(cat, t) for t in lake_tables()}
            killed = commit(point) if point else None
            pending = sql("SELECT commit_id, table_namespace, table_name FROM stocks_stream.lake_commits "
                          "WHERE snapshot_id IS NULL ORDER BY commit_id")
            # what a reader of the catalog sees of the batch the kill left
            seen = [{"snapshot": lake.find_snapshot(cat.load_table(t), c.commit_id) is not None,
                     "unreferenced": len(unreferenced_metadata(cat, t) - unreferenced.get(t, set()))}
                    for c in pending for t in [(c.table_namespace, c.table_name)]]
            again = commit()
            stages[point] = {"killed": killed, "pending": pending, "seen": seen, "again": again}
            assert again.returncode == 0, again.stderr[-3000:]
        p.stop()
        yield {"topic": topic, "pipeline": p, "bucket": bucket, "stages": stages}
    finally:
        p.drop()


def test_the_catalog_is_icebergs_jdbc_catalog_schema():
    cols = sql("SELECT table_name, column_name, data_type, character_maximum_length, is_nullable "
               "FROM information_schema.columns WHERE table_schema = 'stocks_stream_lake' "
               "ORDER BY table_name, ordinal_position")
    assert [tuple(c) for c in cols] == [
        ("iceberg_namespace_properties", "catalog_name", "character varying", 255, "NO"),
        ("iceberg_namespace_properties", "namespace", "character varying", 255, "NO"),
        ("iceberg_namespace_properties", "property_key", "character varying", 255, "NO"),
        ("iceberg_namespace_properties", "property_value", "character varying", 1000, "YES"),
        ("iceberg_tables", "catalog_name", "character varying", 255, "NO"),
        ("iceberg_tables", "table_namespace", "character varying", 255, "NO"),
        ("iceberg_tables", "table_name", "character varying", 255, "NO"),
        ("iceberg_tables", "metadata_location", "character varying", 1000, "YES"),
        ("iceberg_tables", "previous_metadata_location", "character varying", 1000, "YES"),
        ("iceberg_tables", "iceberg_type", "character varying", 5, "YES"),
    ]
    keys = sql("SELECT conrelid::regclass::text AS rel, pg_get_constraintdef(oid) AS def FROM pg_constraint "
               "WHERE connamespace = 'stocks_stream_lake'::regnamespace ORDER BY 1")
    assert [tuple(k) for k in keys] == [
        ("stocks_stream_lake.iceberg_namespace_properties", "PRIMARY KEY (catalog_name, namespace, property_key)"),
        ("stocks_stream_lake.iceberg_tables", "PRIMARY KEY (catalog_name, table_namespace, table_name)"),
    ]


def test_pg_dump_keeps_the_catalog_and_the_commit_records():
    dumped = {r.tbl for r in sql("SELECT c::regclass::text AS tbl FROM pg_extension, unnest(extconfig) AS c "
                                 "WHERE extname = 'stocks_stream'")}
    assert {"stocks_stream_lake.iceberg_tables", "stocks_stream_lake.iceberg_namespace_properties",
            "stocks_stream.lake_commits", "stocks_stream.lake_commit_objects"} <= dumped


CRASHES = {
    # point: what a reader sees after the kill (the batch's snapshot, metadata
    # files the catalog does not point at), and how the next run finishes it
    "claimed": ({"snapshot": False, "unreferenced": 0}, "added"),
    "files-written": ({"snapshot": False, "unreferenced": 1}, "added"),
    "committed": ({"snapshot": True, "unreferenced": 0}, "found"),
}


@pytest.mark.parametrize("point", lake.CRASH_POINTS)
def test_a_commit_killed_at_each_point_is_finished_by_the_next_run(lake_run, point):
    stage = lake_run["stages"][point]
    assert stage["killed"].returncode == -9, stage["killed"].stderr[-3000:]
    assert len(stage["pending"]) == 1                   # the claimed batch, not marked
    assert stage["seen"] == [CRASHES[point][0]]
    c = stage["pending"][0]
    finished = [line.split("\t") for line in stage["again"].stdout.splitlines() if "\tcommit " in line]
    assert [f[4] for f in finished if f[1] == f"commit {c.commit_id}"] == [CRASHES[point][1]]
    assert sql_value("SELECT count(*) FROM stocks_stream.lake_commits WHERE snapshot_id IS NULL") == 0


def data_files(table):
    return Counter(task.file.file_path for task in table.scan().plan_files())


def test_each_object_is_in_its_table_once_and_each_commit_is_one_snapshot(lake_run):
    cat = catalog()
    p, bucket = lake_run["pipeline"], lake_run["bucket"]
    bronze = data_files(cat.load_table(("bronze", p.name)))
    assert bronze == Counter(f"s3://{p.bucket}/{r.object_key}" for r in p.manifest())
    for table in ("quotes", "trades"):
        files = data_files(cat.load_table(("silver", table)))
        mine = Counter(f for f in files if f.startswith(f"s3://{bucket}/"))
        keys = [r.object_key for r in sql("SELECT object_key FROM stocks_stream.lake_objects "
                                          "WHERE bucket = %s AND table_name = %s", [bucket, table])]
        assert len(keys) == DAYS * len(STAGES)
        assert mine == Counter(f"s3://{bucket}/{k}" for k in keys)
    # each commit record names a snapshot of its table whose property names it
    for c in sql("SELECT commit_id, table_namespace, table_name, snapshot_id FROM stocks_stream.lake_commits "
                 "WHERE commit_id IN (SELECT commit_id FROM stocks_stream.lake_commit_objects "
                 "WHERE bucket IN (%s, %s))", [bucket, p.bucket]):
        snap = cat.load_table((c.table_namespace, c.table_name)).snapshot_by_id(c.snapshot_id)
        assert snap.summary[lake.COMMIT_PROPERTY] == str(c.commit_id)
    assert sql_value("SELECT count(*) FROM stocks_stream.lake_objects l JOIN stocks_stream.lake_commit_objects o "
                     "USING (bucket, object_key) JOIN stocks_stream.lake_commits c USING (commit_id) "
                     "WHERE l.bucket = %s AND l.iceberg_snapshot_id = c.snapshot_id",
                     [bucket]) == 2 * DAYS * len(STAGES)


def test_a_run_with_nothing_new_commits_nothing(lake_run):
    run = commit()
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "lake-commit: 0 commits, 0 objects"


# --- what the engines answer ------------------------------------------------

def silver_answers(table, topic):
    """count, sum of volume, min and max price per symbol and UTC day, as silver answers."""
    volume = "sum(volume)" if table == "trades" else "NULL::float8"
    return {(r.symbol, r.day): (r.n, r.volume, r.lo, r.hi) for r in sql(
        f"SELECT symbol, ({TIME[table]} AT TIME ZONE 'UTC')::date AS day, count(*) AS n, {volume} AS volume, "
        f"min(price) AS lo, max(price) AS hi FROM stocks_stream.{table} WHERE source_topic = %s GROUP BY 1, 2",
        [topic])}


def duckdb_connect():
    """DuckDB with the iceberg, httpfs and avro extensions of the duckdb-ext
    wheels (test/requirements.txt): loaded from the virtualenv, never
    downloaded."""
    spec = importlib.util.find_spec("duckdb_ext")
    con = duckdb.connect(config={
        "extension_directory": os.path.join(list(spec.submodule_search_locations)[0], "extensions"),
        "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for ext in ("httpfs", "avro", "iceberg"):
        con.execute(f"LOAD {ext}")
    endpoint = os.environ["S3_ENDPOINT"]
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SECRET lake (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', "
                "USE_SSL ?)", [os.environ["S3_ACCESS_KEY"], os.environ["S3_SECRET_KEY"],
                               os.environ.get("S3_REGION", "us-east-1"), endpoint.split("://", 1)[1],
                               endpoint.startswith("https")])
    return con


def metadata_location(namespace, name):
    return sql_value("SELECT metadata_location FROM stocks_stream_lake.iceberg_tables "
                     "WHERE catalog_name = %s AND table_namespace = %s AND table_name = %s",
                     [lake.CATALOG_NAME, namespace, name])


def rounded(answers):
    return {k: (n, None if v is None else round(v, 6), lo, hi) for k, (n, v, lo, hi) in answers.items()}


@pytest.mark.parametrize("table", ["quotes", "trades"])
def test_duckdb_reads_each_silver_iceberg_table_as_silver_answers(lake_run, table):
    topic = lake_run["topic"].name
    volume = "sum(volume)" if table == "trades" else "NULL::DOUBLE"
    con = duckdb_connect()
    got = {(s, d): (n, v, lo, hi) for s, d, n, v, lo, hi in con.execute(
        f"SELECT symbol, CAST({TIME[table]} AS DATE), count(*), {volume}, min(price), max(price) "
        f"FROM iceberg_scan(?) WHERE source_topic = ? GROUP BY ALL",
        [metadata_location("silver", table), topic]).fetchall()}
    want = silver_answers(table, topic)
    assert len(want) == len(SYMBOLS) * DAYS
    assert rounded(got) == rounded(want)
    dupes = con.execute("SELECT count(*) FROM (SELECT source_partition, source_offset FROM iceberg_scan(?) "
                        "WHERE source_topic = ? GROUP BY ALL HAVING count(*) > 1)",
                        [metadata_location("silver", table), topic]).fetchone()
    assert dupes == (0,)


def test_duckdb_reads_the_bronze_iceberg_table_as_the_archive_holds_it(lake_run):
    topic, p = lake_run["topic"], lake_run["pipeline"]
    con = duckdb_connect()
    rows = con.execute('SELECT topic, "partition", "offset", value::VARCHAR FROM iceberg_scan(?)',
                       [metadata_location("bronze", p.name)]).fetchall()
    assert len(rows) == len(topic.produced) == PER_STAGE * len(STAGES)
    assert {(t, part, off): v.encode() for t, part, off, v in rows} == {
        (topic.name, part, off): v for (part, off), v in topic.produced.items()}
    # every column as the objects themselves hold it (the timestamps in milliseconds too)
    columns = 'topic, "partition", "offset", timestamp::VARCHAR, key, headers::VARCHAR, value::VARCHAR'
    objects = [f"s3://{p.bucket}/{r.object_key}" for r in p.manifest()]
    scanned = con.execute(f"SELECT {columns} FROM iceberg_scan(?)", [metadata_location("bronze", p.name)])
    assert sorted(scanned.fetchall()) == sorted(
        con.execute(f"SELECT {columns} FROM read_parquet(?)", [objects]).fetchall())


@pytest.mark.parametrize("table", ["quotes", "trades"])
def test_pyiceberg_scans_each_silver_table_as_silver_answers(lake_run, table):
    topic = lake_run["topic"].name
    rows = catalog().load_table(("silver", table)).scan(row_filter=EqualTo("source_topic", topic)).to_arrow()
    assert Counter(Counter(zip(rows["source_partition"].to_pylist(), rows["source_offset"].to_pylist())).values()) \
        == Counter({1: rows.num_rows})                   # no row twice
    got = {}
    for r in rows.select(["symbol", TIME[table], "price"] + (["volume"] if table == "trades" else [])).to_pylist():
        k = (r["symbol"], r[TIME[table]].astimezone(dt.timezone.utc).date())
        n, v, lo, hi = got.get(k, (0, None if table == "quotes" else 0.0, r["price"], r["price"]))
        got[k] = (n + 1, None if v is None else v + r["volume"], min(lo, r["price"]), max(hi, r["price"]))
    assert rounded(got) == rounded(silver_answers(table, topic))


def test_the_reader_reads_the_catalog_and_cannot_change_it(lake_run):
    """stocks_dbt, a reader, scans a table through the catalog; writing the
    catalog or the commit records is refused."""
    p = lake_run["pipeline"]
    rows = catalog("stocks_dbt").load_table(("bronze", p.name)).scan().to_arrow()
    assert rows.num_rows == PER_STAGE * len(STAGES)
    with psycopg.connect(user="stocks_dbt", autocommit=True) as conn:
        for statement in ("UPDATE stocks_stream_lake.iceberg_tables SET metadata_location = NULL",
                          "DELETE FROM stocks_stream.lake_commits",
                          "SELECT stocks_stream.lake_claim('silver', 'trades')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
