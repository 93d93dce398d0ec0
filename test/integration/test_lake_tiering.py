"""Silver days tiered to the lake (docs/lake.md): a retention policy per
silver table, CALL stocks_stream.tier_to_lake() freezing, exporting,
verifying and dropping each day past it, one committed step at a time.

Each test runs in a database of its own (the launcher does not serve it),
so the days and policies of one never reach another's.  What the lake
holds is read back with DuckDB from the objects in S3, and compared with
what silver held before: count, sum of volume, min and max price per
symbol and day.  The crash tests kill the tiering backend (SIGKILL: the
server goes through crash recovery) at each step, then tier again, and
count every row of the day: in Postgres or in the lake, exactly once."""
import json
import os
import subprocess
import uuid

import duckdb
import psycopg
import pytest

from stack_support import ROOT, named_row, s3_client, sql, wait_until
from test_airflow import airflow_env  # noqa: F401 (a fixture)

DAY1, DAY2 = "2026-11-02", "2026-11-03"
SYMBOLS = 7


class Lake:
    """A database with the extension, a bucket, and the helpers to fill
    silver, tier it and read the lake back."""

    def __init__(self, tmp_path):
        self.db = "lake_" + uuid.uuid4().hex[:8]
        self.bucket = "lake-" + uuid.uuid4().hex[:10]
        self.tmp = tmp_path
        self.s3 = s3_client()
        self.s3.create_bucket(Bucket=self.bucket)
        sql(f"CREATE DATABASE {self.db}")
        self.run("SET client_min_messages = error; CREATE EXTENSION stocks_stream")
        self.notices = []

    def run(self, query, params=None):
        return sql(query, params, dbname=self.db)

    def value(self, query, params=None):
        (row,) = self.run(query, params)
        return row[0]

    def connect(self, **settings):
        conn = psycopg.connect(dbname=self.db, autocommit=True, row_factory=named_row)
        conn.add_notice_handler(lambda d: self.notices.append(d.message_primary))
        for name, value in settings.items():
            conn.execute(f"SET stocks_stream.{name} = '{value}'")
        return conn

    def tier(self, max_steps=None, **settings):
        settings = {"lake_row_group_rows": 1000, "lake_object_size": "64kB", **settings}
        with self.connect(**settings) as conn:
            conn.execute("CALL stocks_stream.tier_to_lake(%s)", [max_steps])

    def register(self):
        """Stand for the Iceberg commit: every verified object gets a snapshot id."""
        self.run("UPDATE stocks_stream.lake_objects SET iceberg_snapshot_id = 42 "
                 "WHERE verified_at IS NOT NULL AND iceberg_snapshot_id IS NULL")

    def tier_fully(self):
        """Tier, register, tier again: every day due ends in the lake."""
        self.tier()
        self.register()
        self.tier()

    def trades(self, day, n, offset=0):
        self.run("SELECT stocks_stream.ensure_day_partition(%s)", [day])
        self.run("""
            INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, conditions, source_topic,
                                              source_partition, source_offset)
            SELECT 'S' || (i %% %s), %s::date::timestamptz + i * interval '1 second' / 3, 100 + (i * 7 %% 13) / 4.0,
                   (i %% 9) / 4.0,
                   CASE i %% 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN ARRAY['1', 'x' || i]
                               WHEN 2 THEN ARRAY['a', NULL] ELSE ARRAY['12'] END,
                   't_lake', i %% 3, %s + i
              FROM generate_series(1, %s) i""", [SYMBOLS, day, offset, n])

    def quotes(self, day, n):
        self.run("SELECT stocks_stream.ensure_day_partition(%s)", [day])
        self.run("""
            INSERT INTO stocks_stream.quotes (symbol, quote_time, price, change, change_pct, day_high, day_low,
                                              day_open, prev_close, fetched_at, source_topic, source_partition,
                                              source_offset)
            SELECT 'Q' || (i %% 5), %s::date::timestamptz + i * interval '1 second', 50 + (i %% 11) / 8.0,
                   CASE WHEN i %% 3 > 0 THEN (i %% 7) / 8.0 END, CASE WHEN i %% 5 > 0 THEN i / 1024.0 END,
                   60, 40, 50, 49.5,
                   CASE WHEN i %% 2 = 0 THEN %s::date::timestamptz + i * interval '1 second' END,
                   'q_lake', 0, i
              FROM generate_series(1, %s) i""", [day, day, n])

    def silver(self, table, day):
        """What silver holds of a day: per symbol, count, sum(volume), min and max price."""
        time, volume = ("trade_time", "sum(volume)") if table == "trades" else ("quote_time", "NULL::float8")
        return {tuple(r[:1]): tuple(r[1:]) for r in self.run(
            f"SELECT symbol, count(*), {volume}, min(price), max(price) FROM stocks_stream.{table} "
            f"WHERE {time} >= %s::date AND {time} < %s::date + 1 GROUP BY symbol", [day, day])}

    def objects(self, table=None, day=None):
        return self.run("SELECT * FROM stocks_stream.lake_objects WHERE (%s::text IS NULL OR table_name = %s) "
                        "AND (%s::date IS NULL OR day = %s) ORDER BY table_name, day, part",
                        [table, table, day, day])

    def keys_in_s3(self, table, day):
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"lake/silver/{table}/day={day}/")
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def download(self, keys):
        paths = []
        for key in keys:
            path = self.tmp / key.replace("/", "_")
            path.write_bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            paths.append(str(path))
        return paths

    def lake(self, table, day, keys=None):
        """What DuckDB reads in the day's objects (those in S3 when keys is None)."""
        keys = self.keys_in_s3(table, day) if keys is None else keys
        if not keys:
            return {}
        time, volume = ("trade_time", "sum(volume)") if table == "trades" else ("quote_time", "NULL::DOUBLE")
        paths = self.download(keys)
        rows = duckdb.sql(f"SELECT symbol, count(*), {volume}, min(price), max(price), "
                          f"  min(epoch_us({time}) // 86400000000), max(epoch_us({time}) // 86400000000) "
                          f"FROM read_parquet({paths!r}) GROUP BY symbol").fetchall()
        day_number = self.value("SELECT %s::date - date '1970-01-01'", [day])
        assert {r[5] for r in rows} | {r[6] for r in rows} == {day_number}, "an object holds a row of another day"
        return {(r[0],): (r[1], r[2], r[3], r[4]) for r in rows}

    def partition_exists(self, table, day):
        return self.value("SELECT to_regclass(%s) IS NOT NULL",
                          [f"stocks_stream.{table}_{day.replace('-', '')}"])

    def status(self, table, day):
        rows = self.run("SELECT * FROM stocks_stream.lake_status WHERE table_name = %s AND day = %s", [table, day])
        return rows[0] if rows else None

    def drop(self):
        sql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


@pytest.fixture
def lake(tmp_path):
    lake = Lake(tmp_path)
    try:
        yield lake
    finally:
        lake.drop()


def test_days_past_retention_move_to_the_lake_and_duckdb_reads_what_silver_held(lake):
    lake.trades(DAY1, 6000)
    lake.trades(DAY2, 2500, offset=10_000)
    lake.quotes(DAY1, 3000)
    lake.trades("today", 100, offset=50_000)
    before = {(t, d): lake.silver(t, d) for t, d in [("trades", DAY1), ("trades", DAY2), ("quotes", DAY1)]}
    op = "t_lake_op_" + uuid.uuid4().hex[:6]
    sql(f"CREATE ROLE {op} LOGIN IN ROLE stocks_stream_operator")
    try:
        with psycopg.connect(dbname=lake.db, user=op, autocommit=True) as conn:
            conn.execute("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
            conn.execute("SELECT stocks_stream.set_lake_retention('quotes', 2, %s, 'lake')", [lake.bucket])
            conn.execute("CALL stocks_stream.tier_to_lake()")
    finally:
        sql(f"DROP ROLE {op}")

    # verified, but not registered in Iceberg: every day is still in Postgres
    for (table, day), silver in before.items():
        assert lake.partition_exists(table, day)
        assert lake.silver(table, day) == silver
        status = lake.status(table, day)
        assert (status.status, status.state) == ("tiering", "verified")
        assert status.verified_objects == status.lake_objects >= 1 and status.registered_objects == 0
    assert lake.status("trades", "today").status == "hot"

    lake.register()
    lake.tier()
    for (table, day), silver in before.items():
        assert not lake.partition_exists(table, day), f"{table} {day} is still in Postgres"
        status = lake.status(table, day)
        assert (status.status, status.in_postgres) == ("lake", False)
        assert status.lake_rows == sum(v[0] for v in silver.values())
        assert status.lake_bytes == sum(o.bytes for o in lake.objects(table, day))
        assert lake.lake(table, day) == silver, f"DuckDB reads {table} {day} other than silver held it"
    assert lake.value("SELECT count(*) FROM stocks_stream.trades") == 100   # today stays hot
    assert lake.status("trades", "today").status == "hot"


def test_objects_are_typed_sorted_zstd_parquet_in_row_groups_and_objects_of_the_set_size(lake):
    lake.trades(DAY1, 80_000)   # about 3 bytes a row encoded: objects of 64kB, more than two
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier(lake_row_group_rows=1000, lake_object_size="64kB")
    objects = lake.objects("trades", DAY1)
    assert [o.object_key for o in objects] == [
        f"lake/silver/trades/day={DAY1}/trades-{DAY1}-{n}.parquet" for n in range(1, len(objects) + 1)]
    assert len(objects) > 2 and sum(o.row_count for o in objects) == 80_000
    paths = lake.download([o.object_key for o in objects])
    for o, path in zip(objects, paths):
        assert o.bytes == len(open(path, "rb").read())
        groups = duckdb.sql(f"SELECT DISTINCT row_group_id, row_group_num_rows, compression "
                            f"FROM parquet_metadata('{path}')").fetchall()
        assert {g[2] for g in groups} == {"ZSTD"}
        assert all(g[1] <= 1000 for g in groups) and sum(g[1] for g in groups) == o.row_count
    # an object closes once its row groups pass the size: all but the last are past it
    assert all(o.bytes >= 64 * 1024 for o in objects[:-1])
    schema = {r[0]: r[1:] for r in duckdb.sql(
        f"SELECT name, type, converted_type, repetition_type FROM parquet_schema('{paths[0]}')").fetchall()}
    assert schema["symbol"] == ("BYTE_ARRAY", "UTF8", "REQUIRED")
    assert schema["trade_time"] == ("INT64", "TIMESTAMP_MICROS", "REQUIRED")
    assert schema["price"] == ("DOUBLE", None, "REQUIRED") and schema["volume"] == ("DOUBLE", None, "REQUIRED")
    assert schema["conditions"][1:] == ("LIST", "REQUIRED") and schema["element"] == ("BYTE_ARRAY", "UTF8", "OPTIONAL")
    logical = duckdb.sql(f"SELECT logical_type FROM parquet_schema('{paths[0]}') WHERE name = 'trade_time'").fetchone()
    assert "isAdjustedToUTC=1" in logical[0] and "MICROS" in logical[0]
    # every value as silver held it, rows in (symbol, time) order across the objects
    got = duckdb.sql(f"SELECT symbol, epoch_us(trade_time), price, volume, conditions, source_partition, "
                     f"source_offset FROM read_parquet({paths!r}, file_row_number = true, filename = true) "
                     f"ORDER BY filename, file_row_number").fetchall()
    assert [g[:2] for g in got] == sorted(g[:2] for g in got)
    assert len({g[6] for g in got}) == 80_000
    assert {tuple(g[4]) for g in got} == {(), ("a", None), ("12",)} | {("1", f"x{i}") for i in range(1, 80_001, 4)}


def test_quotes_keep_their_nulls(lake):
    lake.quotes(DAY1, 1000)
    lake.run("SELECT stocks_stream.set_lake_retention('quotes', 1, %s)", [lake.bucket])
    want = lake.run("SELECT count(change), count(change_pct), count(fetched_at), sum(change), sum(change_pct) "
                    "FROM stocks_stream.quotes")[0]
    lake.tier_fully()
    paths = lake.download(lake.keys_in_s3("quotes", DAY1))
    got = duckdb.sql(f"SELECT count(change), count(change_pct), count(fetched_at), sum(change), sum(change_pct) "
                     f"FROM read_parquet({paths!r})").fetchone()
    assert got == tuple(want) and got[0] < 1000 and got[2] == 500


def corrupt_an_object(lake):
    first, second = lake.objects("trades", DAY1)[:2]
    body = lake.s3.get_object(Bucket=lake.bucket, Key=second.object_key)["Body"].read()
    lake.s3.put_object(Bucket=lake.bucket, Key=first.object_key, Body=body)
    return "object " + first.object_key


def delete_a_row(lake):
    lake.run(f"DELETE FROM stocks_stream.trades_{DAY1.replace('-', '')} WHERE source_offset = 3")
    return "symbol S3: 11428 rows"   # of 80,000: 11,429 of them S3, one deleted


@pytest.mark.parametrize("mismatch", [corrupt_an_object, delete_a_row], ids=["object overwritten in S3",
                                                                             "row deleted from the partition"])
def test_a_day_that_fails_verification_stays_in_postgres_and_is_exported_again(lake, mismatch):
    lake.trades(DAY1, 80_000)   # objects of 64kB: more than one
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier(max_steps=2)     # frozen, exported
    assert lake.status("trades", DAY1).state == "exported"
    reason = mismatch(lake)
    rows = lake.value("SELECT count(*) FROM stocks_stream.trades")
    lake.tier()
    status = lake.status("trades", DAY1)
    assert (status.status, status.state, status.failed_step) == ("failed", "failed", "verify")
    assert status.reason.startswith(reason), status.reason
    assert lake.partition_exists("trades", DAY1)
    assert lake.value("SELECT count(*) FROM stocks_stream.trades") == rows
    assert lake.value("SELECT count(*) FROM api.lake_days WHERE status = 'failed'") == 1

    # the next run exports the day again over the same keys, and verifies it
    keys = [o.object_key for o in lake.objects("trades", DAY1)]
    before = lake.silver("trades", DAY1)
    lake.tier_fully()
    assert [o.object_key for o in lake.objects("trades", DAY1)] == keys == lake.keys_in_s3("trades", DAY1)
    status = lake.status("trades", DAY1)
    assert (status.status, status.reason, status.lake_rows) == ("lake", None, rows)
    assert lake.lake("trades", DAY1) == before


def test_a_failed_put_leaves_the_day_in_postgres_and_the_next_run_tiers_it(lake):
    lake.trades(DAY1, 3000)
    missing = "lake-missing-" + uuid.uuid4().hex[:8]
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [missing])
    lake.tier()
    status = lake.status("trades", DAY1)
    assert (status.status, status.failed_step, status.lake_objects) == ("failed", "export", 0)
    assert f"could not put s3://{missing}/lake/silver/trades/day={DAY1}/trades-{DAY1}-1.parquet" in status.reason
    assert "NoSuchBucket" in status.reason
    assert any(n.startswith(f"stocks_stream.tier_to_lake: export of trades {DAY1} failed, the day stays in Postgres")
               for n in lake.notices)
    assert lake.value("SELECT count(*) FROM stocks_stream.trades") == 3000
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier_fully()
    status = lake.status("trades", DAY1)
    assert (status.status, status.reason, status.lake_rows) == ("lake", None, 3000)


def late_trade(lake, n, minute_of_day):
    """A late trade of DAY1 loaded from a bronze object by load_bronze_prefix()."""
    t = lake.value("SELECT (extract(epoch FROM %s::date::timestamptz) * 1000)::bigint", [DAY1]) \
        + minute_of_day * 60_000 + 123
    line = json.dumps({"s": "S1", "p": 999.0, "t": t, "v": 2.5, "c": ["late"]})
    key = f"bronze/t_late/dt={DAY1}/hour={minute_of_day // 60:02d}/0-{n:020d}-{n:020d}.ndjson"
    lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=(line + "\n").encode())
    return lake.run("SELECT * FROM stocks_stream.load_bronze_prefix(%s, 'bronze/')", [lake.bucket])[0]


def test_a_late_row_for_a_tiered_day_goes_to_the_next_object_and_gold_keeps_the_day(lake):
    lake.trades(DAY1, 3000)
    lake.run("INSERT INTO stocks_stream.gold_dirty (symbol, minute) "
             "SELECT DISTINCT symbol, date_trunc('minute', trade_time) FROM stocks_stream.trades")
    lake.run("SELECT stocks_stream.refresh_gold()")
    gold = "SELECT * FROM stocks_stream.candles WHERE symbol = 'S1' ORDER BY interval, bucket_start"
    candles = [r[:-1] for r in lake.run(gold)]   # all but refreshed_at
    summary = lake.run("SELECT symbol, day, open, close, high, low, volume FROM stocks_stream.daily_summary ORDER BY symbol")
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier_fully()
    first = lake.objects("trades", DAY1)
    etags = {k: lake.s3.head_object(Bucket=lake.bucket, Key=k)["ETag"] for k in lake.keys_in_s3("trades", DAY1)}
    assert lake.status("trades", DAY1).status == "lake"

    # a late row makes the partition again; gold's candles of the day do not change
    loaded = late_trade(lake, 1, minute_of_day=2)
    assert (loaded.objects_loaded, loaded.rows_loaded) == (1, 1)
    assert lake.partition_exists("trades", DAY1)
    lake.run("SELECT stocks_stream.refresh_gold()")
    assert [r[:-1] for r in lake.run(gold)] == candles
    assert lake.run("SELECT symbol, day, open, close, high, low, volume FROM stocks_stream.daily_summary ORDER BY symbol") == summary

    # the next run tiers the late row as object n + 1; the first objects stay as they were
    lake.tier_fully()
    objects = lake.objects("trades", DAY1)
    assert [o.part for o in objects] == list(range(1, len(first) + 2))
    assert objects[-1].row_count == 1 and objects[-1].round == 2
    assert [o.object_key for o in objects[:-1]] == [o.object_key for o in first]
    assert {k: lake.s3.head_object(Bucket=lake.bucket, Key=k)["ETag"] for k in etags} == etags
    status = lake.status("trades", DAY1)
    assert (status.status, status.round, status.lake_rows) == ("lake", 2, 3001)
    paths = lake.download(lake.keys_in_s3("trades", DAY1))
    assert duckdb.sql(f"SELECT count(*), count(*) FILTER (WHERE price = 999) FROM read_parquet({paths!r})"
                      ).fetchone() == (3001, 1)


def test_a_late_row_while_the_day_is_tiered_waits_and_lands_in_the_next_round(lake):
    lake.trades(DAY1, 2000)
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier(max_steps=1)   # frozen: the partition takes no more rows
    loaded = late_trade(lake, 1, minute_of_day=5)
    assert (loaded.rows_loaded, loaded.objects_failed) == (0, 1)
    error = lake.value("SELECT load_error FROM stocks_stream.manifest WHERE loaded_at IS NULL")
    assert "_lake_frozen" in error
    lake.tier_fully()
    assert lake.status("trades", DAY1).lake_rows == 2000
    assert lake.value("SELECT stocks_stream.retry_failed_objects()") == 1
    loaded = lake.run("SELECT * FROM stocks_stream.load_bronze()")[0]
    assert (loaded.rows_loaded, loaded.objects_failed) == (1, 0)
    lake.tier_fully()
    status = lake.status("trades", DAY1)
    assert (status.status, status.round, status.lake_rows) == ("lake", 2, 2001)
    assert sum(v[0] for v in lake.lake("trades", DAY1).values()) == 2001


# ------------------------------------------------------- the export's order

def trades_in_heap_order(lake, day, layout, heap_order):
    """Trades of day for each (name, symbols, rows) of layout: `symbols`
    symbols (name, or name1, name2, ... for more than one) of `rows` rows
    each, their times spread over the day; inserted in time order (as
    loads add them), in reverse, or shuffled."""
    names, counts, rows = (list(c) for c in zip(*layout))
    lake.run("SELECT stocks_stream.ensure_day_partition(%s)", [day])
    lake.run(f"""
        INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, conditions, source_topic,
                                          source_partition, source_offset)
        SELECT CASE WHEN g.k = 1 THEN g.name ELSE g.name || s END,
               %s::date::timestamptz + (i * 86000.0 / g.n) * interval '1 second', 100 + (i %% 13) / 4.0,
               (i %% 9) / 4.0, CASE i %% 3 WHEN 0 THEN '{{}}'::text[] WHEN 1 THEN ARRAY['1']
                                            ELSE ARRAY['x' || i, NULL] END,
               't_order', 0, row_number() OVER ()
          FROM unnest(%s::text[], %s::int[], %s::int[]) g(name, k, n), generate_series(1, g.k) s,
               generate_series(1, g.n) i
         ORDER BY {dict(time="2", reverse="2 DESC", shuffled="random()")[heap_order]}""",
             [day, names, counts, rows])


def export_day(lake, day, sort_mem):
    """_lake_export() of a trades day with lake_sort_mem: its rows, checksum
    and objects per symbol, the partition's sequential and index scans,
    and the objects' (symbol, time) rows in the order written."""
    part = f"trades_{day.replace('-', '')}"
    with lake.connect(lake_sort_mem=sort_mem) as conn:
        # plans of the index reads fixed, so the counts of scans say which reads ran
        conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        with conn.transaction():
            exported = conn.execute("SELECT * FROM stocks_stream._lake_export('trades', %s, %s, 'lake', 1) "
                                    "ORDER BY part, symbol", [day, lake.bucket]).fetchall()
            scans = conn.execute("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = %s",
                                 [part]).fetchone()
    sums = {}
    for e in exported:
        rows, checksum = sums.get(e.symbol, (0, 0))
        sums[e.symbol] = (rows + e.row_count, (checksum + e.checksum) % 2**64)
    keys = [k for _, k in sorted({(e.part, e.object_key) for e in exported})]
    return sums, tuple(scans), rows_as_written(lake, keys)


def rows_as_written(lake, keys):
    """(symbol, time) of each row of the objects, in the order they hold them."""
    written = []
    for path in lake.download(keys):
        written += duckdb.sql(f"SELECT symbol, epoch_us(trade_time) FROM read_parquet('{path}', file_row_number = true) "
                              f"ORDER BY file_row_number").fetchall()
    return written


# (id, layout, heap order, lake_sort_mem, (sequential scans, index scans) of the partition)
EXPORT_ORDERS = [
    ("the day in memory", [("S", 12, 300)], "time", "16MB", (2, 0)),
    ("runs of symbols through temporary files", [("S", 40, 120), ("a", 1, 50), ("B", 1, 60), ("BRK.B", 1, 70),
                                                 ("BRKB", 1, 80), ("b", 1, 90)], "time", "64kB", (2, 0)),
    ("symbols over the budget through the index", [("A", 1, 100), ("M", 1, 2000), ("N", 8, 100), ("Z", 1, 1500)],
     "time", "64kB", (2, 2)),
    ("more runs than one scan writes to files", [("S", 300, 300)], "time", "64kB", (3, 0)),
    ("the heap in reverse time order", [("S", 30, 200)], "reverse", "64kB", (2, 0)),
    ("the heap shuffled", [("S", 30, 200), ("M", 1, 1000)], "shuffled", "64kB", (2, 1)),
    ("more symbols than the sequential read plans for", [("S", 100_001, 1)], "time", "16MB", (1, 1)),
]


@pytest.mark.parametrize("layout, heap_order, sort_mem, scans", [c[1:] for c in EXPORT_ORDERS],
                         ids=[c[0] for c in EXPORT_ORDERS])
def test_the_export_writes_a_day_in_symbol_and_time_order_in_bounded_memory(lake, layout, heap_order, sort_mem,
                                                                            scans):
    trades_in_heap_order(lake, DAY1, layout, heap_order)
    sums, got_scans, written = export_day(lake, DAY1, sort_mem)
    assert got_scans == scans
    assert len(written) == sum(k * n for _, k, n in layout)
    assert written == sorted(written), "rows not in (symbol, time) order, symbols by their bytes"
    # every row once: the sums the verification computes from the partition
    assert sums == {r.symbol: (r.row_count, r.checksum % 2**64)
                    for r in lake.run("SELECT * FROM stocks_stream._lake_scan_day('trades', %s)", [DAY1])}


def test_a_day_updated_out_of_time_order_is_tiered_through_temporary_files_and_reads_as_silver(lake):
    trades_in_heap_order(lake, DAY1, [("S", 20, 300), ("T", 1, 2000)], "shuffled")
    # new row versions at the end of the heap, dead ones left behind
    lake.run("UPDATE stocks_stream.trades SET volume = volume + 1 WHERE source_offset % 5 = 0")
    lake.run("DELETE FROM stocks_stream.trades WHERE source_offset % 7 = 0")
    before = lake.silver("trades", DAY1)
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier(lake_sort_mem="64kB")
    status = lake.status("trades", DAY1)
    assert status.state == "verified" and status.lake_rows == sum(v[0] for v in before.values())
    lake.register()
    lake.tier()
    assert lake.status("trades", DAY1).status == "lake"
    assert lake.lake("trades", DAY1) == before
    written = rows_as_written(lake, [o.object_key for o in lake.objects("trades", DAY1)])
    assert written == sorted(written)


# -------------------------------------------------------------------- crashes

CRASH_POINTS = [
    # (point, whether the day reaches the drop step before the crash)
    ("frozen", False),       # the partition frozen, not committed
    ("export_put", False),   # the first object PUT, the rest not written, nothing recorded
    ("exported", False),     # every object PUT and recorded, not committed
    ("verified", False),     # every object read back and matched, not committed
    ("detached", True),      # registered in Iceberg, the partition detached, not dropped
    ("dropped", True),       # the partition dropped, not committed
]


def ended(session):
    try:
        session.execute("SELECT 1")
        return False
    except psycopg.OperationalError:
        return True


def day_rows(lake, table, day):
    """(rows in Postgres, rows in the lake): the lake counts only a day that left Postgres."""
    in_postgres = lake.value(f"SELECT count(*) FROM stocks_stream.{table}_{day.replace('-', '')}") \
        if lake.partition_exists(table, day) else 0
    recorded = [o.object_key for o in lake.objects(table, day)]
    in_lake = sum(v[0] for v in lake.lake(table, day, recorded).values()) \
        if lake.status(table, day).state == "dropped" else 0
    return in_postgres, in_lake


@pytest.mark.parametrize("point, at_drop", CRASH_POINTS, ids=[p[0] for p in CRASH_POINTS])
def test_a_crash_at_any_step_leaves_the_day_in_postgres_or_in_the_lake_exactly_once(lake, point, at_drop):
    n = 20_000
    lake.trades(DAY1, n)
    before = lake.silver("trades", DAY1)
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    if at_drop:
        lake.tier()
        lake.register()
    witness = psycopg.connect(dbname=lake.db, autocommit=True)
    with pytest.raises(psycopg.OperationalError):
        lake.tier(test_crash_point=point)
    wait_until(lambda: ended(witness), 30, "every other session ended too: the server went through crash recovery")
    witness.close()

    in_postgres, in_lake = day_rows(lake, "trades", DAY1)
    assert (in_postgres, in_lake) in [(n, 0), (0, n)], f"after a crash at {point}: {in_postgres} in Postgres, " \
                                                       f"{in_lake} in the lake"
    lake.tier_fully()
    assert day_rows(lake, "trades", DAY1) == (0, n)
    # nothing doubled in S3 either: the objects there are those recorded, read whole
    assert lake.keys_in_s3("trades", DAY1) == [o.object_key for o in lake.objects("trades", DAY1)]
    assert lake.lake("trades", DAY1) == before


# ------------------------------------------------------------------ arguments

BAD_POLICIES = [
    ("gold", 7, "b-ok", "lake", "22023", "stocks_stream.set_lake_retention: table_name must be 'quotes' or 'trades'"),
    (None, 7, "b-ok", "lake", "22023", "stocks_stream.set_lake_retention: table_name must be 'quotes' or 'trades', got NULL"),
    ("trades", 0, "b-ok", "lake", "22023", "stocks_stream.set_lake_retention: hot_days must be between 1 and 36500, got 0"),
    ("trades", None, "b-ok", "lake", "22023", "stocks_stream.set_lake_retention: hot_days must be between 1 and 36500, got NULL"),
    ("trades", 7, "Bad_Bucket", "lake", "22023", "stocks_stream: invalid S3 bucket name \"Bad_Bucket\""),
    ("trades", 7, "b-ok", "/lake", "22023", "stocks_stream.set_lake_retention: invalid key prefix \"/lake\""),
    ("trades", 7, "b-ok", "lake/../x", "22023", "stocks_stream.set_lake_retention: invalid key prefix"),
    ("trades", 7, "b-ok", "", "22023", "stocks_stream.set_lake_retention: invalid key prefix \"\""),
]


@pytest.mark.parametrize("table, hot_days, bucket, prefix, sqlstate, message", BAD_POLICIES,
                         ids=[f"{b[0]}-{b[1]}-{b[2]}-{b[3]}" for b in BAD_POLICIES])
def test_a_retention_policy_checks_its_arguments(table, hot_days, bucket, prefix, sqlstate, message):
    with psycopg.connect(autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT stocks_stream.set_lake_retention(%s, %s, %s, %s)", [table, hot_days, bucket, prefix])
    assert e.value.sqlstate == sqlstate
    assert e.value.diag.message_primary.startswith(message)
    assert e.value.diag.message_hint


def test_a_policy_is_shown_changed_and_dropped(lake):
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 7, %s)", [lake.bucket])
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 3, %s, 'cold/silver')", [lake.bucket])
    (policy,) = lake.run("SELECT table_name, hot_days, bucket, prefix, tiers_through = (now() AT TIME ZONE 'UTC')::date - 3 AS ok "
                         "FROM stocks_stream.lake_policies")
    assert tuple(policy) == ("trades", 3, lake.bucket, "cold/silver", True)
    assert lake.value("SELECT stocks_stream.drop_lake_retention('trades')") is True
    assert lake.value("SELECT stocks_stream.drop_lake_retention('trades')") is False
    assert lake.run("SELECT * FROM stocks_stream.lake_policies") == []


def test_dropping_a_policy_lets_a_day_being_tiered_take_rows_again(lake):
    lake.trades(DAY1, 100)
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier(max_steps=1)
    with pytest.raises(psycopg.errors.CheckViolation):
        lake.trades(DAY1, 1, offset=1000)
    lake.run("SELECT stocks_stream.drop_lake_retention('trades')")
    lake.trades(DAY1, 1, offset=1000)
    status = lake.status("trades", DAY1)
    assert (status.status, status.reason) == ("failed", "the retention policy was dropped")
    lake.tier()
    assert lake.status("trades", DAY1).state == "failed"    # no policy: nothing more happens
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.tier_fully()
    assert lake.status("trades", DAY1).lake_rows == 101


def test_the_airflow_dag_tiers_the_days_due(lake, airflow_env):
    env, venv = airflow_env
    env = dict(env, AIRFLOW_CONN_STOCKS_PG=f"postgres://postgres@{os.environ['PGHOST']}:{os.environ['PGPORT']}/{lake.db}")
    lake.trades(DAY1, 3000)
    before = lake.silver("trades", DAY1)
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    run = subprocess.run([os.path.join(venv, "bin", "airflow"), "dags", "test", "stocks_lake"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    status = lake.status("trades", DAY1)
    assert (status.status, status.lake_rows, status.registered_objects) == ("lake", 3000, status.lake_objects)
    assert lake.lake("trades", DAY1) == before


def test_a_day_leaves_postgres_once_scripts_lake_commit_registered_it_in_iceberg(lake):
    """The two halves together: tier_to_lake() verifies, scripts/lake-commit
    (sql/iceberg.sql) registers the verified objects in silver.<table>, and
    the next tier_to_lake() drops the day."""
    lake.trades(DAY1, 4000)
    lake.quotes(DAY1, 1500)
    before = {t: lake.silver(t, DAY1) for t in ("trades", "quotes")}
    lake.run("SELECT stocks_stream.set_lake_retention('trades', 1, %s)", [lake.bucket])
    lake.run("SELECT stocks_stream.set_lake_retention('quotes', 1, %s)", [lake.bucket])
    lake.tier()
    assert {lake.status(t, DAY1).state for t in before} == {"verified"}
    run = subprocess.run([os.path.join(ROOT, "scripts", "lake-commit")], env=dict(os.environ, PGDATABASE=lake.db),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert lake.value("SELECT count(*) FROM stocks_stream.lake_objects WHERE iceberg_snapshot_id IS NULL") == 0
    lake.tier()
    for table, silver in before.items():
        status = lake.status(table, DAY1)
        assert (status.status, status.registered_objects) == ("lake", status.lake_objects)
        assert lake.lake(table, DAY1) == silver
    snapshots = lake.run("SELECT table_namespace, table_name FROM stocks_stream_lake.iceberg_tables ORDER BY 2")
    assert [tuple(s) for s in snapshots] == [("silver", "quotes"), ("silver", "trades")]
