"""Helpers the integration tests share: the stack's clients, topics,
pipelines and sources, the archive key format, and waiting for conditions.

The tests run against the real local stack started by scripts/stack
(PostgreSQL with the extension preloaded, a Kafka KRaft broker, MinIO);
`scripts/stack env` exports its addresses.  Every test uses its own topic,
pipeline and bucket, so tests do not see each other's data.

Import what you need from here (`from stack_support import sql, Topic`);
conftest.py holds only the fixtures.
"""
import contextlib
import functools
import gzip
import json
import os
import subprocess
import threading
import time
import uuid
from collections import namedtuple

import boto3
import psycopg
from botocore.config import Config
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.environ.get("STOCKS_STREAM_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BROKERS = os.environ["KAFKA_BROKERS"]


# --- PostgreSQL -------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _row_type(names):
    # rename=True: a name that is no identifier, or repeats (two extract(...)
    # columns), becomes _<position>, as collections.namedtuple does
    return namedtuple("Row", names, rename=True)


def named_row(cursor):
    """A psycopg row factory: named tuples that accept any column names."""
    if cursor.description is None:
        return tuple
    make = _row_type(tuple(c.name for c in cursor.description))._make
    return make


def sql(query, params=None, retries=60, **connect):
    """Run one statement on a fresh connection (survives server restarts);
    `connect` may name another server or database (host, port, dbname).

    Returns its rows (None for a statement without a result).  Rows are
    named tuples: `row.state` names the column, and they still compare and
    unpack like plain tuples."""
    for attempt in range(retries):
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5, row_factory=named_row, **connect) as conn:
                cur = conn.execute(query, params)
                return cur.fetchall() if cur.description else None
        except psycopg.OperationalError:
            if attempt == retries - 1:
                raise
            time.sleep(1)


class ServerWatch:
    """Holds one session open over a step: a crash of any backend or worker
    ends every session (the postmaster reinitialises), so the step left the
    server up only if this session still answers.

        with ServerWatch():
            ... hostile input ...
    """

    def __enter__(self):
        self.conn = psycopg.connect(autocommit=True, connect_timeout=5)
        self.started = self.conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        return self

    def __exit__(self, *exc):
        try:
            alive = self.conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == self.started
        except psycopg.OperationalError:
            alive = False
        finally:
            self.conn.close()
        if exc[0] is None:
            assert alive, "the server restarted (a backend or worker crashed) during the step"


def sql_value(query, params=None):
    """The single value of a one-row, one-column query."""
    rows = sql(query, params)
    assert rows and len(rows) == 1 and len(rows[0]) == 1, f"expected one value from {query!r}, got {rows!r}"
    return rows[0][0]


def secrets_path():
    """The file stocks_stream.secrets_file names (relative to the data directory)."""
    path = sql_value("SHOW stocks_stream.secrets_file")
    return path if os.path.isabs(path) else os.path.join(sql_value("SHOW data_directory"), path)


def set_secret(name, value):
    """Set one credential in the server's secrets file (None removes it);
    returns its previous value (None when it had none).

    The file is replaced in one rename, keeping its owner and mode 600, so
    the server (which re-reads it when it changes) never sees half of it."""
    path = secrets_path()
    st = os.stat(path)
    with open(path) as f:
        old = f.read().splitlines()
    lines = [line for line in old if line.partition("=")[0].strip() != name]
    previous = [line.partition("=")[2].strip() for line in old if line not in lines]
    if value is not None:
        lines.append(f"{name} = {value}")
    tmp = f"{path}.{os.getpid()}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)
    return previous[-1] if previous else None


def set_settings(**settings):
    """ALTER SYSTEM the settings (None resets one) and wait until the server
    has reloaded them: workers started from then on see the new values."""
    loaded = sql_value("SELECT pg_conf_load_time()")
    for name, value in settings.items():
        if value is None:
            sql(f"ALTER SYSTEM RESET stocks_stream.{name}")
        else:
            sql(f"ALTER SYSTEM SET stocks_stream.{name} = '{value}'")
    sql("SELECT pg_reload_conf()")
    # a new session starts with the postmaster's settings and their load time
    wait_until(lambda: sql_value("SELECT pg_conf_load_time()") > loaded, 30, "the settings to be reloaded")


class ArchiveClock:
    """The clock of the archive workers' flush rules (core/clock.c): while
    stocks_stream.test_clock is set it stands at that time, and only moves
    when set() moves it, so a test makes a batch exactly as old as it wants
    without waiting.  set(seconds) puts it at a fixed start plus seconds;
    reset() gives the workers the real time back."""

    START = 1_800_000_000.0     # 2027-01-15 08:00 UTC

    def set(self, seconds):
        set_settings(test_clock=self.START + seconds)

    def reset(self):
        set_settings(test_clock=None)


class ServerLog:
    """The stack PostgreSQL's log from now on: new() is what the server
    wrote since this object was made."""

    def __init__(self):
        # scripts/stack env: under the stack folder, or where the postgres
        # user can reach when it cannot reach that folder
        self.path = os.environ["STOCKS_STREAM_PG_LOG"]
        self.start = os.path.getsize(self.path)

    def new(self):
        with open(self.path, errors="replace") as f:
            f.seek(self.start)
            return f.read()


@contextlib.contextmanager
def finnhub_served_by(fake):
    """Point the Finnhub sources at a fake (its URLs, the API key
    "test-token") for the block, and back afterwards."""
    set_settings(finnhub_url=fake.http_url, finnhub_ws_url=fake.ws_url)
    key = set_secret("finnhub_api_key", "test-token")
    try:
        yield fake
    finally:
        set_settings(finnhub_url=None, finnhub_ws_url=None)
        set_secret("finnhub_api_key", key)


def stack(*args):
    subprocess.run([os.path.join(ROOT, "scripts", "stack"), *args], check=True,
                   stdout=subprocess.DEVNULL)


# --- waiting ------------------------------------------------------------------

def wait_until(predicate, timeout, what, interval=0.5):
    """Poll predicate until it returns something true; return that value.
    Fails with `what` and the last value after timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def backend_peak_rss_mb(conn):
    """The peak resident memory (VmHWM, MB) of the backend serving conn."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def holds_for(predicate, seconds, what, interval=0.25):
    """Check that predicate stays true for `seconds` (a property over time,
    such as "nothing is archived while S3 is down"); fails at the first
    false reading instead of only looking at the end."""
    deadline = time.time() + seconds
    while True:
        value = predicate()
        assert value, f"{what} stopped holding after {seconds - (deadline - time.time()):.1f}s (got {value!r})"
        if time.time() >= deadline:
            return value
        time.sleep(interval)


# --- S3 and the archive key format --------------------------------------------

def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name=os.environ.get("S3_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}),
    )


def bucket_objects(bucket):
    """Every object in a bucket, gunzipped: key -> (list of lines, etag).
    Every object ends with a newline (one message per line)."""
    s3 = s3_client()
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".gz"):
                body = gzip.decompress(body)
            assert body.endswith(b"\n"), f"{obj['Key']} does not end with a newline"
            out[obj["Key"]] = (body[:-1].split(b"\n"), obj["ETag"].strip('"'))
    return out


def parse_key(key):
    """The parts of an archive object key, or None when key is not one.

    The key format has one home, the extension's object_key.c: this asks it
    (stocks_stream.parse_object_key).  A dict with prefix ('' for none),
    topic, date ('YYYY-MM-DD'), hour (int), partition, first_offset,
    last_offset (None in 0.1.0's <partition>-<first> form) and gz (bool)."""
    k = sql("SELECT * FROM stocks_stream.parse_object_key(%s)", [key])[0]
    if k.kind not in ("archive", "archive_v1"):
        return None
    return {"prefix": k.prefix, "topic": k.topic, "date": k.day.isoformat(), "hour": k.hour,
            "partition": k.partition, "first_offset": k.first_offset, "last_offset": k.last_offset,
            "gz": k.compressed}


# --- Kafka --------------------------------------------------------------------

def quote_message(i, symbol="AAPL"):
    """A message shaped like the quotes the ingest side produces (~150 bytes)."""
    return json.dumps({
        "c": round(150 + (i % 1000) / 100, 2), "d": 0.5, "dp": 0.33, "h": 161.2, "l": 149.8,
        "o": 150.1, "pc": 149.6, "t": 1764000000 + i, "symbol": symbol,
        "fetched_time": 1764000000 + i, "seq": i,
    }, separators=(",", ":"))


class Topic:
    def __init__(self, partitions=4, create=True):
        self.name = "t_" + uuid.uuid4().hex[:10]
        self.partitions = partitions
        if create:
            self.create()
        self.produced = {}          # (partition, offset) -> bytes
        self._lock = threading.Lock()
        self.failed = 0

    def create(self):
        admin = AdminClient({"bootstrap.servers": BROKERS})
        admin.create_topics([NewTopic(self.name, self.partitions, 1)])[self.name].result(30)

    def producer(self):
        return Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "message.max.bytes": 4194304,
                         "linger.ms": 5, "message.timeout.ms": 300000})

    def _on_delivery(self, err, msg):
        with self._lock:
            if err is None:
                self.produced[(msg.partition(), msg.offset())] = msg.value()
            else:
                self.failed += 1

    def produce(self, values, producer=None, partition=None, timestamp_ms=None):
        """Produce values round-robin over the partitions; wait for delivery.
        timestamp_ms: the messages' Kafka timestamp (when they were produced);
        the producer's clock when None."""
        p = producer or self.producer()
        for i, v in enumerate(values):
            part = partition if partition is not None else i % self.partitions
            while True:
                try:
                    p.produce(self.name, value=v if isinstance(v, bytes) else v.encode(),
                              key=b"k%d" % part, partition=part, on_delivery=self._on_delivery,
                              timestamp=timestamp_ms or 0)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        assert p.flush(300) == 0, "messages still undelivered"
        return p


def kafka_committed(group, topic, partitions):
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def high_watermarks(topic, partitions):
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "wm-" + uuid.uuid4().hex[:6]})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in range(partitions)}
    finally:
        c.close()


Message = namedtuple("Message", "partition offset key value headers")


def read_topic(topic, partitions=4, timeout=30):
    """Every message of a topic: a list of Message(partition, offset, key, value, headers)."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "read-" + uuid.uuid4().hex[:8],
                  "enable.auto.commit": False})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out, done = [], {p for p, e in ends.items() if e == 0}
        deadline = time.time() + timeout
        while len(done) < partitions and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append(Message(m.partition(), m.offset(), m.key().decode(), m.value(), dict(m.headers() or [])))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        return out
    finally:
        c.close()


# --- pipelines and sources ----------------------------------------------------

def stored_offsets(pipeline, run_sql=sql):
    """partition -> the next offset a pipeline will archive, as stored in
    Postgres (run_sql: the stack's database, or another instance's)."""
    return {r.partition: r.next_offset for r in run_sql(
        "SELECT o.partition, o.next_offset FROM stocks_stream.offsets o "
        "JOIN stocks_stream.pipelines p USING (pipeline_id) WHERE p.name = %s", [pipeline])}


def caught_up(pipeline, topic, run_sql=sql):
    """The stored offsets reach the end of every non-empty partition of the
    topic: every message in Kafka has been archived and recorded."""
    hw = high_watermarks(topic.name, topic.partitions)
    stored = stored_offsets(pipeline, run_sql)
    return all(stored.get(p) == end for p, end in hw.items() if end > 0)


class Pipeline:
    """An archive pipeline on its own bucket, dropped at the end of a test."""

    def __init__(self, topic, **options):
        self.topic = topic
        self.name = "p_" + uuid.uuid4().hex[:10]
        self.bucket = "b-" + uuid.uuid4().hex[:10]
        self.prefix = options.pop("key_prefix", "bronze")
        args = ", ".join(f"{k} => %({k})s" for k in options)
        sql(f"SELECT stocks_stream.create_pipeline(%(n)s, %(t)s, %(b)s, key_prefix => %(key_prefix)s"
            + (", " + args if args else "") + ")",
            {"n": self.name, "t": topic.name, "b": self.bucket, "key_prefix": self.prefix, **options})

    def start(self):
        sql("SELECT stocks_stream.start_pipeline(%s)", [self.name])

    def stop(self):
        sql("SELECT stocks_stream.stop_pipeline(%s)", [self.name])

    def drop(self):
        sql("SELECT stocks_stream.drop_pipeline(%s)", [self.name])

    def workers(self):
        """Rows with worker, pid, state, assigned_partitions, messages_archived, last_error, lag."""
        return sql("SELECT worker, pid, state, assigned_partitions, messages_archived, last_error, lag "
                   "FROM stocks_stream.worker_status WHERE pipeline = %s ORDER BY worker", [self.name])

    def manifest(self):
        """Rows with object_key, partition, first_offset, last_offset, message_count, bytes, etag."""
        return sql("SELECT object_key, partition, first_offset, last_offset, message_count, bytes, etag "
                   "FROM stocks_stream.manifest WHERE pipeline = %s ORDER BY partition, first_offset",
                   [self.name])

    def archived_count(self):
        return sql_value("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest WHERE pipeline = %s",
                         [self.name])

    def stored_offsets(self):
        return stored_offsets(self.name)

    def caught_up(self):
        return caught_up(self.name, self.topic)

    def wait_archived(self, n, timeout=120):
        """Wait until the manifest holds at least n messages and the stored
        offsets have reached the end of the topic (so nothing more can be
        archived from what was produced), then check it is exactly n."""
        seen = {}

        def done():
            seen["archived"] = self.archived_count()
            if seen["archived"] < n:
                return False
            seen["stored"] = self.stored_offsets()
            try:
                seen["ends"] = high_watermarks(self.topic.name, self.topic.partitions)
            except KafkaException as e:     # the broker is restarting: not known yet
                seen["ends"] = repr(e)
                return False
            return all(seen["stored"].get(p) == end for p, end in seen["ends"].items() if end > 0)

        try:
            wait_until(done, timeout, f"{n} messages archived up to the end of {self.topic.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {seen}") from None
        archived = self.archived_count()
        assert archived == n, f"{archived} messages archived, {n} expected (last seen: {seen})"

    def objects(self):
        """Every object in the bucket: key -> (list of lines, etag)."""
        return bucket_objects(self.bucket)

    def archived_messages(self):
        """(partition, offset) -> value over all objects; fails on a duplicate."""
        seen = {}
        for key, (lines, _) in self.objects().items():
            k = parse_key(key)
            assert k, f"object key {key} does not follow the scheme"
            assert k["topic"] == self.topic.name
            part, first = k["partition"], k["first_offset"]
            if k["last_offset"] is not None:
                assert k["last_offset"] == first + len(lines) - 1, f"{key} holds {len(lines)} lines"
            for i, line in enumerate(lines):
                assert (part, first + i) not in seen, f"offset {(part, first + i)} archived twice"
                seen[(part, first + i)] = line
        return seen


class Source:
    def __init__(self, kind, symbols, topic, options=None, **kwargs):
        self.name = "s_" + uuid.uuid4().hex[:10]
        self.topic = topic
        extra = "".join(f", {k} => %({k})s" for k in kwargs)
        sql("SELECT stocks_stream.create_source(%(n)s, %(k)s, %(s)s, %(t)s, options => %(o)s::jsonb"
            + extra + ")",
            {"n": self.name, "k": kind, "s": symbols, "t": topic, "o": json.dumps(options or {}), **kwargs})

    def start(self):
        sql("SELECT stocks_stream.start_source(%s)", [self.name])

    def stop(self):
        sql("SELECT stocks_stream.stop_source(%s)", [self.name])

    def drop(self):
        sql("SELECT stocks_stream.drop_source(%s)", [self.name])

    def status(self):
        """The source's row in source_status as a dict (None when it runs no worker)."""
        rows = sql("SELECT state, messages_produced, delivery_failures, api_calls, rate_limited_429, "
                   "zero_quotes_skipped, unchanged_quotes_skipped, reconnects, last_error, pid "
                   "FROM stocks_stream.source_status WHERE source = %s", [self.name])
        if not rows:
            return None
        keys = ["state", "produced", "failures", "api_calls", "http_429", "zero", "unchanged",
                "reconnects", "last_error", "pid"]
        return dict(zip(keys, rows[0]))

    def stop_and_wait(self, timeout=30):
        """Stop the source and wait until its worker has exited."""
        pid = (self.status() or {}).get("pid")
        self.stop()
        if pid:
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout, f"source {self.name}'s worker to exit")


def archive_simulated(make_pipeline, symbols, messages, quote_every, seed):
    """A simulator source produces `messages` to a new topic that a new pipeline
    archives; returns the topic and the (stopped) pipeline, nothing loaded yet."""
    t = Topic()
    p = make_pipeline(t, batch_max_age_ms=300)
    src = Source("simulator", symbols, t.name,
                 options={"seed": seed, "rate": 3000, "max_messages": messages, "quote_every": quote_every})
    try:
        p.start()
        src.start()
        p.wait_archived(messages)
    finally:
        src.drop()
    p.stop()
    return t, p


# today on the exchange of a row's symbol, as gold and the marts count days
# (daily bars on the exchange's day in its time zone: between midnight UTC
# and midnight in New York, current_date is already tomorrow's there)
EXCHANGE_TODAY = "(now() AT TIME ZONE (stocks_stream.symbol_exchange(symbol)).time_zone)::date"
