"""Archive pipelines of format 'parquet': one Parquet object per flush, read
back by DuckDB as the columns docs/sql-api.md lists, loaded into silver by
load_bronze() as NDJSON objects are, bad records quarantined."""
import io
import json
import re
import time

import duckdb
import psycopg
import pytest
from confluent_kafka import Producer

from stack_support import (BROKERS, Pipeline, Topic, backend_peak_rss_mb, parse_key, quote_message, s3_client, sql,
                           sql_value)

N = 400
POISON = b'{"c":-5,"d":1,"dp":1,"h":2,"l":1,"o":1,"pc":1,"t":1764000000,"symbol":"AAPL"}'
POISON_REASON = 'price ("c") is not greater than 0'


def trade_message(i, symbol="MSFT"):
    return json.dumps({"s": symbol, "p": round(300 + i / 100, 2), "t": 1764000000000 + i, "v": i % 500 + 1,
                       "c": ["1"]}, separators=(",", ":"))


def silver_sources(topic):
    return {(r.source_partition, r.source_offset) for r in sql(
        "SELECT source_partition, source_offset FROM stocks_stream.quotes WHERE source_topic = %s "
        "UNION ALL SELECT source_partition, source_offset FROM stocks_stream.trades WHERE source_topic = %s",
        [topic, topic])}


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """N good messages (one with headers, one with a CR/LF inside) and a poison
    record, archived as Parquet and loaded once."""
    topic = Topic()
    p = Pipeline(topic, format="parquet", batch_max_age_ms=300)
    try:
        p.start()
        good = [quote_message(i) if i % 2 else trade_message(i) for i in range(N)]
        good[7] = good[7].replace(",", ",\r\n", 1)    # insignificant whitespace inside the value
        topic.produce(good + [POISON])
        producer = Producer({"bootstrap.servers": BROKERS})
        with_headers = quote_message(10_000).encode()
        producer.produce(topic.name, value=with_headers, key=b"AAPL", partition=0,
                         headers=[("source", b"simulator"), ("schema", b"1")],
                         on_delivery=topic._on_delivery)
        assert producer.flush(30) == 0
        p.wait_archived(N + 2)
        (load,) = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
        folder = tmp_path_factory.mktemp("objects")
        s3 = s3_client()
        files = {}
        for row in p.manifest():
            path = folder / row.object_key.replace("/", "_")
            path.write_bytes(s3.get_object(Bucket=p.bucket, Key=row.object_key)["Body"].read())
            files[row.object_key] = path
        yield {"topic": topic, "pipeline": p, "load": load, "files": files, "with_headers": with_headers}
    finally:
        p.drop()


def test_each_flush_is_one_parquet_object_with_the_archive_key(archived):
    rows = archived["pipeline"].manifest()
    assert rows and all(r.object_key.endswith(".parquet") for r in rows)
    for r in rows:
        k = parse_key(r.object_key)
        assert (k["partition"], k["first_offset"], k["last_offset"]) == (r.partition, r.first_offset, r.last_offset)
        assert not k["gz"]
    assert sum(r.message_count for r in rows) == N + 2


def test_duckdb_reads_the_columns_with_their_types_zstd_and_one_row_group(archived):
    con = duckdb.connect()
    for key, path in archived["files"].items():
        f = str(path)
        types = {name: t for name, t in con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))", [f]).fetchall()}
        assert types == {"topic": "VARCHAR", "partition": "INTEGER", "offset": "BIGINT",
                         "timestamp": "TIMESTAMP WITH TIME ZONE", "key": "BLOB", "headers": "JSON",
                         "value": "JSON"}
        logical = dict(con.execute(
            "SELECT name, logical_type FROM parquet_schema(?) WHERE name IN ('value', 'headers')", [f]).fetchall())
        assert logical == {"headers": "JsonType()", "value": "JsonType()"}
        groups, codecs = con.execute(
            "SELECT count(DISTINCT row_group_id), list(DISTINCT compression) FROM parquet_metadata(?)", [f]).fetchone()
        assert groups == 1 and codecs == ["ZSTD"], (key, groups, codecs)
        k = parse_key(key)
        got = con.execute('SELECT topic, partition, "offset", value::VARCHAR FROM read_parquet(?) ORDER BY "offset"',
                          [f]).fetchall()
        produced = archived["topic"].produced
        assert [(t, p, o) for t, p, o, _ in got] == [
            (archived["topic"].name, k["partition"], o) for o in range(k["first_offset"], k["last_offset"] + 1)]
        assert [v.encode() for *_, v in got] == [produced[(k["partition"], o)] for *_, o, _ in got]


def test_key_timestamp_and_headers_are_kept(archived):
    con = duckdb.connect()
    files = [str(f) for f in archived["files"].values()]
    row = con.execute("SELECT key, headers::VARCHAR, timestamp IS NOT NULL FROM read_parquet(?) WHERE value = ?",
                      [files, archived["with_headers"].decode()]).fetchone()
    assert row == (b"AAPL", '{"source":"simulator","schema":"1"}', True)
    assert con.execute("SELECT count(*) FROM read_parquet(?) WHERE headers IS NULL AND key IS NOT NULL",
                       [files]).fetchone() == (N + 1,)


def test_load_bronze_loads_parquet_objects_exactly_once_and_quarantines_the_bad_record(archived):
    topic, p = archived["topic"], archived["pipeline"]
    load = archived["load"]
    assert (load.objects_loaded, load.rows_loaded, load.rows_duplicate, load.rows_quarantined,
            load.objects_failed) == (len(archived["files"]), N + 1, 0, 1, 0)
    produced = {src for src, v in topic.produced.items() if v != POISON}
    assert silver_sources(topic.name) == produced          # none lost, none doubled
    (q,) = sql("SELECT object_key, line_number, raw, reason FROM stocks_stream.quarantine WHERE object_key LIKE %s",
               [f"%/{topic.name}/%"])
    assert bytes(q.raw) == POISON and q.reason == POISON_REASON
    poison_at = next(src for src, v in topic.produced.items() if v == POISON)
    k = parse_key(q.object_key)
    assert (k["partition"], k["first_offset"] + q.line_number) == poison_at
    again = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])[0]
    assert (again.objects_loaded, again.rows_loaded) == (0, 0)


def test_format_is_checked_and_altered():
    topic = Topic(create=False)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="format must be 'ndjson' or 'parquet'"):
        Pipeline(topic, format="csv")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="gzip applies to NDJSON objects"):
        Pipeline(topic, format="parquet", gzip=True)
    p = Pipeline(topic)
    try:
        assert sql_value("SELECT format FROM stocks_stream.pipelines WHERE name = %s", [p.name]) == "ndjson"
        (row,) = sql("SELECT format, generation FROM stocks_stream.alter_pipeline(%s, format => 'parquet')", [p.name])
        assert (row.format, row.generation) == ("parquet", 2)
    finally:
        p.drop()


def test_a_parquet_object_put_but_never_recorded_is_written_again_not_beside(make_pipeline, tmp_path):
    """The probe for objects put but never recorded knows .parquet keys: the
    worker that resumes ends its first object where the unrecorded Parquet
    object ends, under the same key; an NDJSON object there is no object of
    this pipeline's format and is not matched."""
    t = Topic(partitions=1)
    p = make_pipeline(t, format="parquet", batch_max_age_ms=300, batch_max_messages=100000)
    stamp = int(time.time() * 1000)
    values = [quote_message(i).encode() for i in range(100)]
    producer = t.producer()
    for v in values:
        producer.produce(t.name, value=v, key=b"AAPL", partition=0, timestamp=stamp)
    assert producer.flush(30) == 0
    day, hour = time.strftime("%Y-%m-%d %H", time.gmtime(stamp / 1000)).split()
    folder = f"bronze/{t.name}/dt={day}/hour={hour}"
    left = f"{folder}/0-{0:020d}-{39:020d}.parquet"
    s3 = s3_client()
    s3.create_bucket(Bucket=p.bucket)
    s3.put_object(Bucket=p.bucket, Key=left, Body=b"put by a worker that stopped before its record")
    s3.put_object(Bucket=p.bucket, Key=f"{folder}/0-{0:020d}-{59:020d}.ndjson", Body=b"\n".join(values[:60]) + b"\n")
    p.start()
    p.wait_archived(100)
    assert [(r.object_key, r.first_offset, r.last_offset) for r in p.manifest()] == [
        (left, 0, 39), (p.manifest()[1].object_key, 40, 99)]
    rewritten = tmp_path / "rewritten.parquet"
    rewritten.write_bytes(s3.get_object(Bucket=p.bucket, Key=left)["Body"].read())
    con = duckdb.connect()
    assert con.execute("SELECT list(value::VARCHAR ORDER BY \"offset\") FROM read_parquet(?)",
                       [str(rewritten)]).fetchone()[0] == [v.decode() for v in values[:40]]


def test_a_damaged_parquet_object_fails_its_load_and_loads_once_repaired(make_pipeline, no_retry_backoff):
    """A Parquet object from S3 is outside bytes: a truncated one is refused by
    the library as an error of that object (the session lives on, the
    object stays in the manifest, marked failed) and loads once it is whole."""
    t = Topic(partitions=1)
    p = make_pipeline(t, format="parquet", batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(i) for i in range(10)])
    p.wait_archived(10)
    p.stop()
    (obj,) = p.manifest()
    s3 = s3_client()
    whole = s3.get_object(Bucket=p.bucket, Key=obj.object_key)["Body"].read()
    # damaged before its record (the manifest names the damaged bytes' ETag)
    damaged = s3.put_object(Bucket=p.bucket, Key=obj.object_key, Body=whole[: len(whole) // 2])["ETag"].strip('"')
    sql("UPDATE stocks_stream.manifest SET etag = %s WHERE object_key = %s", [damaged, obj.object_key])
    with psycopg.connect(autocommit=True) as conn:
        failed = conn.execute("SELECT objects_failed FROM stocks_stream.load_bronze(%s)", [p.name]).fetchone()
        assert failed == (1,)
        error = conn.execute("SELECT load_error FROM stocks_stream.manifest WHERE object_key = %s",
                             [obj.object_key]).fetchone()[0]
        assert f'could not read Parquet object "{obj.object_key}"' in error
        s3.put_object(Bucket=p.bucket, Key=obj.object_key, Body=whole)
        sql("UPDATE stocks_stream.manifest SET etag = %s WHERE object_key = %s", [obj.etag, obj.object_key])
        assert conn.execute("SELECT objects_loaded, rows_loaded FROM stocks_stream.load_bronze(%s)",
                            [p.name]).fetchone() == (1, 10)


def test_a_parquet_page_claiming_to_inflate_past_max_object_size_is_refused_before_it_inflates(
        make_pipeline, no_retry_backoff):
    """A Parquet object from S3 is outside bytes, and a page of a few kB may
    inflate to gigabytes (here one value of 256 MB of spaces, 27 kB with
    ZSTD): the page is refused from its header, before it inflates, as an
    error of that object (marked failed, the reason kept), and the backend's
    memory never holds it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = Topic(partitions=1)
    p = make_pipeline(t, format="parquet", batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(1)])
    p.wait_archived(1)
    p.stop()
    (obj,) = p.manifest()
    s3 = s3_client()
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=p.bucket, Key=obj.object_key)["Body"].read()))
    bomb = b'{"pad":"' + b" " * (256 << 20) + b'"}'
    table = table.set_column(table.schema.get_field_index("value"), table.schema.field("value"),
                             pa.array([bomb], type=table.schema.field("value").type))
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", use_dictionary=False, write_statistics=False)
    assert len(out.getvalue()) < 100_000
    etag = s3.put_object(Bucket=p.bucket, Key=obj.object_key, Body=out.getvalue())["ETag"].strip('"')
    sql("UPDATE stocks_stream.manifest SET etag = %s WHERE object_key = %s", [etag, obj.object_key])
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("SET stocks_stream.max_object_size = '16MB'")
        before = backend_peak_rss_mb(conn)
        assert conn.execute("SELECT objects_failed FROM stocks_stream.load_bronze(%s)", [p.name]).fetchone() == (1,)
        grown = backend_peak_rss_mb(conn) - before
        error = conn.execute("SELECT load_error FROM stocks_stream.manifest WHERE object_key = %s",
                             [obj.object_key]).fetchone()[0]
    assert f'could not read Parquet object "{obj.object_key}"' in error
    assert re.search(r'a page of column "value" would inflate to \d+ bytes, more than the 16777216 allowed', error)
    assert grown < 64, f"the backend's peak RSS grew by {grown:.0f} MB"
