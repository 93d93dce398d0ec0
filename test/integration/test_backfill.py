"""load_bronze_prefix() over many objects: many GETs in flight (s3_fetch.c),
the same outcome as one GET at a time, failures isolated to their objects,
exactly once across retries, bounded memory, and progress a person can read."""
import concurrent.futures
import json
import re
import threading
import uuid

import psycopg
import pytest

from stack_support import quote_message, s3_client, sql, sql_value, stack, wait_until

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META"]

# Old-pipeline objects that are not a good quote, with the reason each is
# quarantined with; the backfill loads everything around them.
BAD_OBJECTS = {
    "malformed": (b'{"c": 187.2, "d": 1.1,', "line is not valid JSON"),
    "zero-price": (b'{"c": 0, "d": null, "dp": null, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0, '
                   b'"symbol": "TSLA", "fetched_time": 1764000000}', 'price ("c") is not greater than 0'),
}


def old_quote(i, base):
    sym = SYMBOLS[i % len(SYMBOLS)]
    return {"c": round(100 + i / 100, 2), "d": 1.5, "dp": 1.51, "h": 250.0, "l": 99.0, "o": 100.0,
            "pc": 99.0, "t": base + i - 5, "symbol": sym, "fetched_time": base + i}


class LegacyBucket:
    """A bucket of the old Python pipeline: <symbol>/<unix_ts>.json, one quote each."""

    def __init__(self):
        self.name = "legacy-" + uuid.uuid4().hex[:8]
        self.s3 = s3_client()
        self.s3.create_bucket(Bucket=self.name)
        self.base = 1700000000 + uuid.uuid4().int % 50000000   # keys name a quote: new ones per run
        self.bodies = {}
        self.topics = []    # archive topics put here (their silver rows name the topic)

    def put(self, key, body):
        self.s3.put_object(Bucket=self.name, Key=key, Body=body)
        self.bodies[key] = body

    def fill(self, n, bad=()):
        """n quotes (one pretty-printed, as json.dumps(indent=2) wrote some), then the bad ones."""
        def put_quote(i):
            q = old_quote(i, self.base)
            self.put(f"{q['symbol']}/{q['fetched_time']}.json", json.dumps(q, indent=2 if i == 7 else None).encode())
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(put_quote, range(n)))
        for j, name in enumerate(bad):
            self.put(f"TSLA/{self.base + n + j}.json", BAD_OBJECTS[name][0])

    def keys(self):
        return sorted(self.bodies)

    def fill_archive(self, n):
        """n one-quote archive objects of one new topic, in one hour folder."""
        topic = "t_" + uuid.uuid4().hex[:10]
        self.topics.append(topic)

        def put(i):
            self.put(f"bronze/{topic}/dt=2025-11-24/hour=16/0-{i:020d}-{i:020d}.ndjson",
                     (quote_message(i) + "\n").encode())
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(put, range(n)))

    def backfill(self, gets_in_flight=32, lookback=None, **settings):
        """load_bronze_prefix() of the whole bucket (incremental with a
        lookback): its counts and its NOTICEs and WARNINGs."""
        messages = []
        with psycopg.connect(autocommit=True) as conn:
            conn.add_notice_handler(lambda d: messages.append((d.severity_nonlocalized, d.message_primary)))
            conn.execute(f"SET stocks_stream.s3_gets_in_flight = {gets_in_flight}")
            for name, value in settings.items():
                conn.execute(f"SET stocks_stream.{name} = '{value}'")
            if lookback is None:
                counts = conn.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')",
                                      [self.name]).fetchone()
            else:
                counts = conn.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '', %s::interval)",
                                      [self.name, lookback]).fetchone()
        return counts, messages

    def outcome(self):
        """What a backfill leaves: silver rows, quarantine rows and manifest rows (ids and times left out)."""
        silver = sql("SELECT source_topic, source_partition, source_offset, symbol, quote_time, price, day_high, "
                     "fetched_at FROM stocks_stream.quotes WHERE source_topic = ANY(%s) ORDER BY source_topic",
                     [self.keys()])
        quarantine = sql("SELECT object_key, line_number, raw, reason FROM stocks_stream.quarantine "
                         "WHERE bucket = %s ORDER BY object_key", [self.name])
        manifest = sql("SELECT pipeline, object_key, topic, partition, first_offset, last_offset, message_count, "
                       "bytes, etag, compressed, loaded_at IS NOT NULL AS loaded, load_error, load_attempts "
                       "FROM stocks_stream.manifest WHERE bucket = %s ORDER BY object_key", [self.name])
        return silver, quarantine, manifest

    def forget(self):
        """Take what a backfill loaded out of silver, the quarantine and the manifest."""
        sql("DELETE FROM stocks_stream.quotes WHERE source_topic = ANY(%s)", [self.keys() + self.topics])
        sql("DELETE FROM stocks_stream.quarantine WHERE bucket = %s", [self.name])
        sql("DELETE FROM stocks_stream.manifest WHERE bucket = %s", [self.name])

    def drop(self):
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            if page.get("Contents"):
                self.s3.delete_objects(Bucket=self.name,
                                       Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]})
        self.s3.delete_bucket(Bucket=self.name)


@pytest.fixture
def legacy():
    b = LegacyBucket()
    yield b
    b.forget()      # no manifest row is left for a later load_bronze() of every pipeline
    b.drop()


def test_many_gets_in_flight_load_what_one_get_at_a_time_loads(legacy):
    legacy.fill(400, bad=["malformed", "zero-price"])

    one_at_a_time, _ = legacy.backfill(gets_in_flight=1)
    expected = legacy.outcome()
    legacy.forget()
    in_flight, _ = legacy.backfill(gets_in_flight=32)

    assert one_at_a_time == in_flight == (402, 400, 0, 2, 0)
    assert legacy.outcome() == expected
    silver, quarantine, manifest = expected
    assert [r.source_topic for r in silver] == [k for k in legacy.keys() if legacy.bodies[k] not in
                                                [b for b, _ in BAD_OBJECTS.values()]]
    assert sorted(r.reason for r in quarantine) == sorted(reason for _, reason in BAD_OBJECTS.values())
    assert [r.raw for r in quarantine] == [legacy.bodies[r.object_key] for r in quarantine]
    assert all(r.loaded and r.load_error is None and r.message_count == 1 for r in manifest)
    assert [r.bytes for r in manifest] == [len(legacy.bodies[r.object_key]) for r in manifest]
    # a rerun finds everything loaded
    assert legacy.backfill()[0] == (0, 0, 0, 0, 0)


def test_an_object_silver_refuses_fails_alone_and_its_group_loads(legacy, no_retry_backoff):
    """Old-pipeline objects load in groups; when silver refuses one object's
    row (here a constraint an operator added), its group is loaded again one
    object at a time: that object fails alone, with the reason, and stays
    pending; every other object loads once, and so does it once silver
    takes it."""
    legacy.fill(100)
    bad = next(k for k in legacy.keys() if json.loads(legacy.bodies[k])["c"] == 100.37)
    sql("ALTER TABLE stocks_stream.quotes ADD CONSTRAINT test_refuses_one CHECK (price <> 100.37)")
    try:
        counts, messages = legacy.backfill()
    finally:
        sql("ALTER TABLE stocks_stream.quotes DROP CONSTRAINT test_refuses_one")

    assert counts == (99, 99, 0, 0, 1)
    warnings = [m for severity, m in messages if severity == "WARNING"]
    assert len(warnings) == 1 and bad in warnings[0] and "test_refuses_one" in warnings[0], warnings
    silver, _, manifest = legacy.outcome()
    assert [r.source_topic for r in silver] == [k for k in legacy.keys() if k != bad]
    assert [(r.object_key, r.loaded) for r in manifest if r.load_error is not None] == [(bad, False)]
    assert legacy.backfill()[0] == (1, 1, 0, 0, 0)
    silver, _, _ = legacy.outcome()
    assert [r.source_topic for r in silver] == legacy.keys()   # each once


def backfill_in_background(legacy, **settings):
    """Start a backfill that waits for silver (an EXCLUSIVE lock on quotes,
    held by the returned transaction) once it has asked for its first
    objects; returns (thread, box, blocker)."""
    blocker = psycopg.connect()
    blocker.execute("LOCK TABLE stocks_stream.quotes IN EXCLUSIVE MODE")
    box = {}

    def run():
        try:
            box["counts"], box["messages"] = legacy.backfill(**settings)
        except Exception as e:
            box["error"] = e
    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: sql_value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND query LIKE %s", [f"%load_bronze_prefix%"]) > 0 or "error" in box,
               60, "the backfill waiting for silver")
    return t, box, blocker


def test_an_object_gone_before_its_get_fails_alone_and_loads_once_when_back(legacy, no_retry_backoff):
    legacy.fill(200)
    gone = legacy.keys()[-10:]          # the last the backfill GETs (it reads in key order)
    t, box, blocker = backfill_in_background(legacy, gets_in_flight=4)
    for key in gone:
        legacy.s3.delete_object(Bucket=legacy.name, Key=key)
    blocker.rollback()
    t.join(120)

    assert box["counts"] == (190, 190, 0, 0, 10)
    warnings = [m for severity, m in box["messages"] if severity == "WARNING"]
    assert len(warnings) == 10 and all("404 NoSuchKey" in w for w in warnings), warnings
    failed = sql("SELECT object_key, load_error, load_attempts FROM stocks_stream.manifest "
                 "WHERE bucket = %s AND loaded_at IS NULL ORDER BY object_key", [legacy.name])
    assert [r.object_key for r in failed] == gone
    assert all(f"S3 GET {legacy.name}/{r.object_key} returned HTTP 404 NoSuchKey" == r.load_error
               and r.load_attempts == 1 for r in failed)

    for key in gone:
        legacy.put(key, legacy.bodies[key])
    assert legacy.backfill()[0] == (10, 10, 0, 0, 0)
    assert legacy.backfill()[0] == (0, 0, 0, 0, 0)
    silver, _, _ = legacy.outcome()
    assert [r.source_topic for r in silver] == legacy.keys()   # each once


def test_s3_stopping_mid_backfill_fails_the_rest_and_a_retry_loads_them_once(legacy, no_retry_backoff):
    legacy.fill(200)
    t, box, blocker = backfill_in_background(legacy, gets_in_flight=4)
    stack("stop-minio")
    try:
        blocker.rollback()
        t.join(300)
        loaded, rows, _, _, failed = box["counts"]
        # what was fetched before the stop (a group of 64 and 4 in flight at most) loads
        assert loaded + failed == 200 and failed >= 200 - 64 - 4 and rows == loaded
        errors = sql("SELECT DISTINCT load_error LIKE %s AS says_what FROM stocks_stream.manifest "
                     "WHERE bucket = %s AND loaded_at IS NULL", ["S3 GET " + legacy.name + "/%failed: %", legacy.name])
        assert errors == [(True,)]
    finally:
        stack("start-minio")
    assert legacy.backfill()[0] == (failed, failed, 0, 0, 0)
    silver, _, manifest = legacy.outcome()
    assert [r.source_topic for r in silver] == legacy.keys()   # each once
    assert all(r.loaded and r.load_error is None for r in manifest)


def test_a_long_backfill_reports_its_progress(legacy):
    legacy.fill(50, bad=["zero-price"])
    counts, messages = legacy.backfill(progress_interval=0)     # a NOTICE after every object
    assert counts == (51, 50, 0, 1, 0)
    progress = [m for severity, m in messages if severity == "NOTICE"]
    assert len(progress) == 51
    assert progress[0].startswith("stocks_stream.load_bronze_prefix: 1 of 51 objects listed so far loaded (1%), ")
    assert progress[-1].startswith("stocks_stream.load_bronze_prefix: 51 of 51 objects listed so far loaded (100%), 50 rows, "
                                   "0 failed, ")
    # the key it is at: a listing goes in key order
    assert [re.search(r', \d+ objects/s, at "(.*)"$', m).group(1) for m in progress] == legacy.keys()
    # a call shorter than the interval (10 s by default) says nothing
    legacy.forget()
    assert legacy.backfill()[1] == []


def test_a_backfill_lists_and_loads_ten_thousand_keys_at_a_time(legacy):
    legacy.fill(10050)
    counts, messages = legacy.backfill(progress_interval=0)
    assert counts == (10050, 10050, 0, 0, 0)
    progress = [m for severity, m in messages if severity == "NOTICE"]
    totals = [int(re.search(r"of (\d+) objects listed so far", m).group(1)) for m in progress]
    assert totals == [10000] * 10000 + [10050] * 50      # loaded before the rest was listed
    assert legacy.backfill()[0] == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("layout", ["old pipeline", "archive"])
def test_an_incremental_listing_loads_as_it_lists_too(legacy, layout):
    """With a lookback, load_bronze_prefix() walks the folders; however many
    keys a folder holds (six symbol folders of the old pipeline, or one
    topic's hour of 10,050 archive objects), it lists and loads ten thousand
    at a time and never holds a whole folder's listing."""
    if layout == "old pipeline":
        legacy.fill(10050)
    else:
        legacy.fill_archive(10050)
    counts, messages = legacy.backfill(lookback="1 hour", progress_interval=0)
    assert counts == (10050, 10050, 0, 0, 0)
    # (archive objects are also read once to register them: "objects read" NOTICEs)
    progress = [m for severity, m in messages if severity == "NOTICE" and "listed so far loaded" in m]
    totals = [int(re.search(r"of (\d+) objects listed so far", m).group(1)) for m in progress]
    assert len(totals) == 10050 and totals == sorted(totals) and totals[-1] == 10050
    assert totals[0] <= 10000          # loading began before the rest was listed
    assert legacy.backfill(lookback="1 hour")[0] == (0, 0, 0, 0, 0)


def archive_object(topic, partition, lines):
    """An archive object (as the archive worker writes) of `lines` quotes: key, body."""
    key = f"bronze/{topic}/dt=2025-11-24/hour=16/{partition}-{0:020d}-{lines - 1:020d}.ndjson"
    return key, "".join(quote_message(i) + "\n" for i in range(lines)).encode()


def fetch_peaks(bucket, topic, **settings):
    """Backfill the topic's archive objects: the most bytes each fetch held at once
    (received and not yet loaded), from its DEBUG1 message."""
    messages = []
    with psycopg.connect(autocommit=True) as conn:
        conn.add_notice_handler(lambda d: messages.append(d.message_primary))
        conn.execute("SET client_min_messages = debug1")
        for name, value in settings.items():
            conn.execute(f"SET stocks_stream.{name} = '{value}'")
        counts = conn.execute("SELECT * FROM stocks_stream.load_bronze_prefix(%s, %s)",
                              [bucket, f"bronze/{topic}/"]).fetchone()
        conn.execute("DELETE FROM stocks_stream.quotes WHERE source_topic = %s", [topic])
        conn.execute("DELETE FROM stocks_stream.manifest WHERE bucket = %s", [bucket])
    assert counts == (40, 40 * 5000, 0, 0, 0)
    # one fetch reads them to count their lines (registering), one to load them
    return [int(m) for m in re.findall(r"objects fetched, \d+ at a time, at most (\d+) bytes", "\n".join(messages))]


def test_memory_stays_within_the_buffer_however_many_gets_are_in_flight(legacy):
    topic = "t_" + uuid.uuid4().hex[:10]
    for partition in range(40):                 # 40 objects of ~0.8 MB
        key, body = archive_object(topic, partition, 5000)
        legacy.put(key, body)
    # the buffer, plus the object loaded next (never paused, whatever its size)
    peaks = fetch_peaks(legacy.name, topic, s3_gets_in_flight=32, load_buffer="1MB")
    assert len(peaks) == 2 and max(peaks) <= 1024 * 1024 + len(body), peaks
