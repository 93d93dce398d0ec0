"""Shared helpers for the integration tests.

The tests run against the real local stack started by scripts/stack
(PostgreSQL with the extension preloaded, a Kafka KRaft broker, MinIO);
scripts/test exports its addresses.  Every test uses its own topic,
pipeline and bucket, so tests do not see each other's data.
"""
import gzip
import json
import os
import re
import subprocess
import threading
import time
import uuid

import boto3
import psycopg
import pytest
from botocore.config import Config
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.environ.get("STOCKS_STREAM_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BROKERS = os.environ["KAFKA_BROKERS"]
KEY_RE = re.compile(
    r"^(?P<prefix>.*?)/?(?P<topic>[A-Za-z0-9._-]+)/dt=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<partition>\d+)-(?P<offset>\d{20})\.ndjson(?P<gz>\.gz)?$"
)


def sql(query, params=None, retries=60):
    """Run one statement on a fresh connection (survives server restarts)."""
    for attempt in range(retries):
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5) as conn:
                cur = conn.execute(query, params)
                return cur.fetchall() if cur.description else None
        except psycopg.OperationalError:
            if attempt == retries - 1:
                raise
            time.sleep(1)


def stack(*args):
    subprocess.run([os.path.join(ROOT, "scripts", "stack"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def wait_until(predicate, timeout, what, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name=os.environ.get("S3_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}),
    )


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

    def produce(self, values, producer=None, partition=None):
        """Produce values round-robin over the partitions; wait for delivery."""
        p = producer or self.producer()
        for i, v in enumerate(values):
            part = partition if partition is not None else i % self.partitions
            while True:
                try:
                    p.produce(self.name, value=v if isinstance(v, bytes) else v.encode(),
                              key=b"k%d" % part, partition=part, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        assert p.flush(300) == 0, "messages still undelivered"
        return p


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
        return sql("SELECT worker, pid, state, assigned_partitions, messages_archived, last_error "
                   "FROM stocks_stream.worker_status WHERE pipeline = %s ORDER BY worker", [self.name])

    def manifest(self):
        return sql("SELECT object_key, partition, first_offset, last_offset, message_count, bytes, etag "
                   "FROM stocks_stream.manifest WHERE pipeline = %s ORDER BY partition, first_offset",
                   [self.name])

    def archived_count(self):
        return sql("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest WHERE pipeline = %s",
                   [self.name])[0][0]

    def wait_archived(self, n, timeout=120):
        wait_until(lambda: self.archived_count() >= n, timeout, f"{n} messages archived")
        time.sleep(1.0)
        assert self.archived_count() == n

    def objects(self):
        """Every object in the bucket: key -> list of lines."""
        s3 = s3_client()
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                if obj["Key"].endswith(".gz"):
                    body = gzip.decompress(body)
                assert body.endswith(b"\n"), f"{obj['Key']} does not end with a newline"
                out[obj["Key"]] = (body[:-1].split(b"\n"), obj["ETag"].strip('"'))
        return out

    def archived_messages(self):
        """(partition, offset) -> value over all objects; fails on a duplicate."""
        seen = {}
        for key, (lines, _) in self.objects().items():
            m = KEY_RE.match(key)
            assert m, f"object key {key} does not follow the scheme"
            assert m.group("topic") == self.topic.name
            part, first = int(m.group("partition")), int(m.group("offset"))
            for i, line in enumerate(lines):
                assert (part, first + i) not in seen, f"offset {(part, first + i)} archived twice"
                seen[(part, first + i)] = line
        return seen


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


@pytest.fixture
def topic():
    return Topic()


@pytest.fixture
def make_pipeline():
    made = []

    def make(topic, **options):
        p = Pipeline(topic, **options)
        made.append(p)
        return p

    yield make
    for p in made:
        try:
            p.drop()
        except Exception:
            pass


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
        rows = sql("SELECT state, messages_produced, delivery_failures, api_calls, rate_limited_429, "
                   "zero_quotes_skipped, unchanged_quotes_skipped, reconnects, last_error, pid "
                   "FROM stocks_stream.source_status WHERE source = %s", [self.name])
        if not rows:
            return None
        keys = ["state", "produced", "failures", "api_calls", "http_429", "zero", "unchanged",
                "reconnects", "last_error", "pid"]
        return dict(zip(keys, rows[0]))


def read_topic(topic, partitions=4, timeout=30):
    """Every message of a topic: list of (partition, offset, key, value, headers)."""
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
            out.append((m.partition(), m.offset(), m.key().decode(), m.value(), dict(m.headers() or [])))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        return out
    finally:
        c.close()
