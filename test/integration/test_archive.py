"""Kafka -> S3 archive: every message lands in S3 exactly once."""
import datetime
import os
import threading
import time

import pytest

from stack_support import (Topic, high_watermarks, holds_for, kafka_committed, parse_key, quote_message,
                           s3_client, set_settings, sql, sql_value, stack, wait_until)


def assert_exactly_once(pipeline, topic):
    archived = pipeline.archived_messages()
    assert topic.failed == 0
    assert set(archived) == set(topic.produced), (
        f"missing {len(set(topic.produced) - set(archived))}, "
        f"extra {len(set(archived) - set(topic.produced))}")
    for k, v in topic.produced.items():
        assert archived[k] == v, f"message at {k} differs"


def assert_manifest_consistent(pipeline, topic):
    """The manifest matches a LIST of the bucket and Kafka's offsets."""
    manifest = pipeline.manifest()
    objects = pipeline.objects()
    assert {r.object_key for r in manifest} == set(objects)
    for row in manifest:
        lines, s3_etag = objects[row.object_key]
        assert row.etag == s3_etag
        assert row.message_count == len(lines) == row.last_offset - row.first_offset + 1
        key = parse_key(row.object_key)
        assert (key["partition"], key["first_offset"]) == (row.partition, row.first_offset)
        assert key["last_offset"] in (None, row.last_offset)
    hw = high_watermarks(topic.name, topic.partitions)
    assert pipeline.stored_offsets() == {p: hw[p] for p in hw if hw[p] > 0}
    committed = wait_until(
        lambda: (c := kafka_committed("stocks_stream." + pipeline.name, topic.name, topic.partitions))
        == {p: hw[p] if hw[p] > 0 else -1001 for p in hw} and c,
        30, "Kafka group offsets to match")
    assert committed
    lag = sql("SELECT partition, stored_next_offset, high_watermark, lag FROM stocks_stream.consumer_lag "
              "WHERE pipeline = %s ORDER BY partition", [pipeline.name])
    assert [(r.partition, r.high_watermark, r.lag) for r in lag] == [(p, hw[p], 0) for p in sorted(hw)]


def test_all_messages_archived_once_with_keys_manifest_and_offsets(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_messages=700, batch_max_age_ms=500)
    p.start()
    topic.produce([quote_message(i) for i in range(6000)])
    p.wait_archived(6000)
    assert_exactly_once(p, topic)
    assert_manifest_consistent(p, topic)
    today = datetime.datetime.now(datetime.timezone.utc)
    for key in p.objects():
        k = parse_key(key)
        assert k["prefix"] == "bronze"
        assert k["date"] == today.strftime("%Y-%m-%d") and not k["gz"]
    # batches respect max messages
    assert max(r.message_count for r in p.manifest()) <= 700
    (worker,) = p.workers()
    assert worker.state == "running"
    assert worker.assigned_partitions == "0,1,2,3" and worker.messages_archived == 6000
    # nothing left to archive: the published lag drops to 0
    wait_until(lambda: sql_value("SELECT lag FROM stocks_stream.worker_status WHERE pipeline = %s",
                                 [p.name]) == 0, 15, "the lag to reach 0")


def test_objects_archived_over_plain_http_are_signed_with_their_sha256_not_a_crc(topic, make_pipeline):
    """Over http:// nothing but SigV4's payload hash keeps a body from being
    changed on the wire, so the archive keeps it there; the UNSIGNED-PAYLOAD
    with a CRC-32C it sends over TLS (test_tls.py) would not: the server
    holds no CRC of these objects."""
    assert os.environ["S3_ENDPOINT"].startswith("http://")
    p = make_pipeline(topic, batch_max_messages=100, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) for i in range(300)])
    p.wait_archived(300)
    s3 = s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=p.bucket)["Contents"]]
    assert len(keys) >= 3
    assert [s3.head_object(Bucket=p.bucket, Key=k, ChecksumMode="ENABLED").get("ChecksumCRC32C")
            for k in keys] == [None] * len(keys)


@pytest.mark.parametrize("in_flight", [1, 64])
def test_objects_of_many_partitions_travel_side_by_side_exactly_once(make_pipeline, in_flight):
    """However many S3 requests an archive worker keeps in flight (one at a
    time, or many partitions' objects side by side), every message of every
    partition is archived once, each partition's objects in offset order,
    and the manifest matches S3 and Kafka."""
    t = Topic(partitions=32)
    set_settings(archive_requests_in_flight=in_flight)
    try:
        p = make_pipeline(t, batch_max_messages=40, batch_max_age_ms=300)
        p.start()
        t.produce([quote_message(i) for i in range(6400)])
        p.wait_archived(6400)
    finally:
        set_settings(archive_requests_in_flight=None)
    assert_exactly_once(p, t)
    assert_manifest_consistent(p, t)
    by_partition = {}
    for row in sql("SELECT partition, first_offset FROM stocks_stream.manifest WHERE pipeline = %s "
                   "ORDER BY object_id", [p.name]):
        by_partition.setdefault(row.partition, []).append(row.first_offset)
    assert all(firsts == sorted(firsts) for firsts in by_partition.values())
    assert sorted(by_partition) == list(range(32))


@pytest.mark.parametrize("gzip, suffix", [(False, ".ndjson"), (True, ".ndjson.gz")], ids=["plain", "gzip"])
def test_objects_decode_under_their_prefix(topic, make_pipeline, gzip, suffix):
    p = make_pipeline(topic, gzip=gzip, batch_max_age_ms=300, key_prefix="raw/quotes")
    p.start()
    topic.produce([quote_message(i) for i in range(2000)])
    p.wait_archived(2000)
    keys = list(p.objects())
    assert keys and all(k.endswith(suffix) and k.startswith("raw/quotes/") for k in keys)
    assert all(parse_key(k)["prefix"] == "raw/quotes" and parse_key(k)["gz"] == gzip for k in keys)
    assert_exactly_once(p, topic)
    raw = sum(len(v) + 1 for v in topic.produced.values())
    stored = sum(r.bytes for r in p.manifest())
    if gzip:
        # stored bytes are the compressed size, well below the raw size
        assert stored < raw / 3
    else:
        assert stored == raw


@pytest.mark.parametrize("key, parts", [
    ("bronze/market/dt=2026-11-25/hour=07/3-00000000000000000042.ndjson",
     {"prefix": "bronze", "topic": "market", "date": "2026-11-25", "hour": 7, "partition": 3,
      "first_offset": 42, "last_offset": None, "gz": False}),
    ("raw/quotes/t_1/dt=2026-01-02/hour=23/0-00000000000000000000-00000000000000000699.ndjson.gz",
     {"prefix": "raw/quotes", "topic": "t_1", "date": "2026-01-02", "hour": 23, "partition": 0,
      "first_offset": 0, "last_offset": 699, "gz": True}),
    ("market/dt=2026-11-25/hour=00/12-00000000000000000001-00000000000000000001.ndjson",
     {"prefix": "", "topic": "market", "date": "2026-11-25", "hour": 0, "partition": 12,
      "first_offset": 1, "last_offset": 1, "gz": False}),
    ("AAPL/1764000000.json", None),
    ("bronze/market/dt=2026-11-25/hour=07/3-42.ndjson", None),
    ("bronze/market/dt=2026-11-25/hour=07/3-00000000000000000042.json", None),
    ("bronze/market/dt=2026-11-25/hour=07/3-00000000000000000042-00000000000000000041.ndjson", None),
    ("bronze/market/hour=07/3-00000000000000000042-00000000000000000042.ndjson", None),
], ids=["first-offset-form", "first-last-form-gzip", "no-prefix", "old-pipeline-object", "short-offset",
        "not-ndjson", "last-before-first", "no-day-folder"])
def test_parse_key_reads_both_key_forms(key, parts):
    """The tests' one reader of archive keys (stack_support.parse_key), which
    asks the extension's own parser (object_key.c, parse_object_key)."""
    assert parse_key(key) == parts


def test_two_workers_split_partitions(topic, make_pipeline):
    p = make_pipeline(topic, workers=2, batch_max_age_ms=300)
    p.start()

    def split():
        w = p.workers()
        parts = [set(x.assigned_partitions.split(",")) if x.assigned_partitions else set() for x in w]
        return len(w) == 2 and all(parts) and parts[0].isdisjoint(parts[1]) and \
            parts[0] | parts[1] == {"0", "1", "2", "3"}

    wait_until(split, 60, "two workers sharing the four partitions")
    topic.produce([quote_message(i) for i in range(4000)])
    p.wait_archived(4000)
    assert_exactly_once(p, topic)
    assert sum(x.messages_archived for x in p.workers()) == 4000


def read_by_the_worker(p, messages):
    """Wait until the pipeline's worker has read `messages` messages it has
    not archived (its lag counts them from the first offset of its batch)."""
    wait_until(lambda: (w := p.workers()) and w[0].lag == messages, 30, f"the worker to read {messages} messages")


@pytest.mark.parametrize("messages", [1, 3])
def test_a_quiet_partitions_batch_is_flushed_at_its_max_age_and_not_before(topic, make_pipeline, clock, messages):
    """A partition that gets a few messages, or one, then nothing: its batch
    goes when it is batch_max_age_ms old, not before (a single message too,
    once S3 has answered the look for an unrecorded object that its first
    message started).  The workers' clock stands still until the test moves
    it, so no test waits for a real minute."""
    p = make_pipeline(topic, batch_max_messages=100000, batch_max_age_ms=60000)
    p.start()
    wait_until(lambda: (w := p.workers()) and w[0].assigned_partitions, 60, "assignment")
    topic.produce([quote_message(i) for i in range(messages)], partition=2)
    read_by_the_worker(p, messages)
    clock.set(59)
    holds_for(lambda: not p.manifest(), 3, "nothing archived before the batch's max age")
    clock.set(61)
    p.wait_archived(messages, timeout=30)
    assert [(r.partition, r.message_count) for r in p.manifest()] == [(2, messages)]


@pytest.mark.parametrize("produced, due", [
    (-10, 50),   # produced 10 s before it arrived: due 60 s after it was produced
    (-40, 30),   # 40 s: still at least half the max age after it arrived
    (-70, 60),   # older than the max age, as in a backlog: 60 s after it arrived
    (10, 60),    # stamped after it arrived (the producer's clock ahead): 60 s after it arrived
])
def test_a_batchs_max_age_counts_from_when_its_first_message_was_produced(topic, make_pipeline, clock,
                                                                           produced, due):
    """The max age bounds how long a record waits from its producer to S3,
    so the time it spent in Kafka counts: a batch goes batch_max_age_ms
    after its first message's Kafka timestamp, but never sooner than half
    the age after that message arrived, and a message older than the age
    (a backlog) or stamped in the future starts the age when it arrives."""
    clock.START = float(int(time.time()))  # the workers' clock beside the timestamps Kafka accepts
    clock.set(0)
    p = make_pipeline(topic, batch_max_messages=100000, batch_max_age_ms=60000)
    p.start()
    wait_until(lambda: (w := p.workers()) and w[0].assigned_partitions, 60, "assignment")
    topic.produce([quote_message(1)], partition=3, timestamp_ms=int((clock.START + produced) * 1000))
    read_by_the_worker(p, 1)
    clock.set(due - 1)
    holds_for(lambda: not p.manifest(), 3, "nothing archived before the batch is due")
    clock.set(due + 1)
    p.wait_archived(1, timeout=30)
    assert [(r.partition, r.message_count) for r in p.manifest()] == [(3, 1)]


@pytest.mark.parametrize("messages, at_once", [(300, True), (100, False)])
def test_a_backlog_read_to_its_end_is_archived_at_once_unless_its_batch_is_small(topic, make_pipeline, clock,
                                                                                 messages, at_once):
    """A partition read to its end (caught up with its producers) does not
    wait out the batch's max age when its batch is a quarter full or more
    (of max messages here): the object goes at once, while the workers'
    clock stands still.  A smaller batch waits for its age, so a trickle of
    messages does not make tiny objects."""
    p = make_pipeline(topic, batch_max_messages=1000, batch_max_age_ms=60000)
    topic.produce([quote_message(i) for i in range(messages)], partition=1)
    p.start()
    if at_once:
        p.wait_archived(messages, timeout=60)
    else:
        read_by_the_worker(p, messages)
        holds_for(lambda: not p.manifest(), 3, "nothing archived before the batch's max age")
        clock.set(61)
        p.wait_archived(messages, timeout=30)
    assert [(r.partition, r.message_count) for r in p.manifest()] == [(1, messages)]


def test_pipeline_started_before_its_topic_waits_then_archives(make_pipeline):
    topic = Topic(create=False)
    p = make_pipeline(topic, batch_max_age_ms=500)
    p.start()
    (worker,) = wait_until(lambda: (w := p.workers()) and w[0].state == "waiting for topic" and w, 60,
                           "state 'waiting for topic'")
    assert worker.last_error is None, "a missing topic is a state, not an error"
    topic.create()
    topic.produce([quote_message(i) for i in range(40)])
    p.wait_archived(40, timeout=90)
    (worker,) = p.workers()
    assert (worker.state, worker.last_error) == ("running", None)


def test_message_larger_than_batch_is_archived_alone(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_bytes=4096, batch_max_age_ms=500)
    p.start()
    big = "{\"blob\":\"" + "x" * 20000 + "\"}"
    topic.produce([quote_message(1), quote_message(2), big, quote_message(3)], partition=0)
    p.wait_archived(4)
    assert_exactly_once(p, topic)
    sizes = {r.first_offset: r.message_count for r in p.manifest()}
    (big_offset,) = [offset for (_, offset), v in topic.produced.items() if len(v) > 10000]
    assert sizes[big_offset] == 1
    assert all(r.bytes <= 4096 for r in p.manifest() if r.first_offset != big_offset)


def test_line_breaks_inside_a_message_keep_one_line_per_offset(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_age_ms=300)
    p.start()
    topic.produce(['{"a": 1,\n "b": 2}', quote_message(1)], partition=1)
    p.wait_archived(2)
    archived = p.archived_messages()
    assert archived[(1, 0)] == b'{"a": 1,  "b": 2}'


class BackgroundProducer(threading.Thread):
    """Produces a steady stream until stopped."""

    def __init__(self, topic, rate=400):
        super().__init__(daemon=True)
        self.topic, self.rate, self.stop_flag, self.count = topic, rate, threading.Event(), 0

    def run(self):
        p = self.topic.producer()
        while not self.stop_flag.is_set():
            self.topic.produce([quote_message(self.count + i) for i in range(self.rate // 10)], producer=p)
            self.count += self.rate // 10
            time.sleep(0.1)
        p.flush(300)

    def finish(self):
        self.stop_flag.set()
        self.join(600)
        return self.count


@pytest.mark.parametrize("partitions", [4, 32])
def test_s3_outage_pauses_then_resumes_without_loss(make_pipeline, partitions):
    """S3 goes down while objects are on their way (with 32 partitions, many
    side by side): nothing is recorded until they are in S3, and then
    everything is, once."""
    topic = Topic(partitions=partitions)
    p = make_pipeline(topic, batch_max_messages=500 if partitions == 4 else 50, batch_max_age_ms=500)
    p.start()
    prod = BackgroundProducer(topic)
    prod.start()
    wait_until(lambda: p.archived_count() > 500, 60, "archiving to start")
    stack("stop-minio")
    try:
        wait_until(lambda: any(w.state == "waiting for S3" and w.last_error for w in p.workers()), 30,
                   "the worker to report S3 down")
        frozen = p.archived_count()
        holds_for(lambda: p.archived_count() == frozen, 20, "no offset advancing while S3 is down")
    finally:
        stack("start-minio")
    n = prod.finish()
    p.wait_archived(n, timeout=180)
    assert_exactly_once(p, topic)
    (worker,) = p.workers()
    assert worker.state == "running"


def test_postgres_immediate_restart_mid_stream(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_messages=300, batch_max_age_ms=300)
    p.start()
    prod = BackgroundProducer(topic)
    prod.start()
    wait_until(lambda: p.archived_count() > 300, 60, "archiving to start")
    stack("pg-restart-immediate")
    wait_until(lambda: any(w.state == "running" for w in p.workers()), 60,
               "the worker to run again after the restart")
    n = prod.finish()
    p.wait_archived(n, timeout=180)
    assert_exactly_once(p, topic)
    assert_manifest_consistent(p, topic)


def test_broker_restart_mid_stream(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_messages=300, batch_max_age_ms=300)
    p.start()
    prod = BackgroundProducer(topic)
    prod.start()
    wait_until(lambda: p.archived_count() > 300, 60, "archiving to start")
    stack("stop-kafka")
    time.sleep(5)   # the outage itself: the broker stays down five seconds
    stack("start-kafka")
    n = prod.finish()
    p.wait_archived(n, timeout=240)
    assert_exactly_once(p, topic)


def test_sigterm_exits_quickly_and_worker_is_restarted(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) for i in range(1000)])
    p.wait_archived(1000)
    (worker,) = p.workers()
    pid = worker.pid
    sql("SELECT pg_terminate_backend(%s)", [pid])
    started = time.time()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 5, "the worker to exit")
    assert time.time() - started < 5
    wait_until(lambda: (w := p.workers()) and w[0].pid != pid, 60, "a restarted worker")
    topic.produce([quote_message(i) for i in range(1000, 2000)])
    p.wait_archived(2000, timeout=120)
    assert_exactly_once(p, topic)


def test_stop_start_and_alter_resume_from_stored_offsets(topic, make_pipeline):
    p = make_pipeline(topic, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) for i in range(800)])
    p.wait_archived(800)
    p.stop()
    wait_until(lambda: not p.workers(), 15, "workers to stop")
    topic.produce([quote_message(i) for i in range(800, 1600)])
    holds_for(lambda: p.archived_count() == 800 and not p.workers(), 2, "a stopped pipeline archiving nothing")
    sql("SELECT stocks_stream.alter_pipeline(%s, gzip => true)", [p.name])
    p.start()
    p.wait_archived(1600, timeout=120)
    assert_exactly_once(p, topic)
    assert any(k.endswith(".gz") for k in p.objects())


def test_consumer_lag_names_every_pipeline_and_topic_it_reads(make_pipeline):
    """consumer_lag reads the pipelines through SPI and uses their names after
    SPI_finish: they must be copied out first (they were used after being
    freed, which a few short names hid).  Forty pipelines, each named with
    its own topic in its rows."""
    topics = [Topic(partitions=1) for _ in range(40)]
    pipelines = {make_pipeline(t).name: t.name for t in topics}
    rows = sql("SELECT pipeline, topic FROM stocks_stream.consumer_lag WHERE pipeline = ANY(%s)",
               [list(pipelines)])
    assert sorted((r.pipeline, r.topic) for r in rows) == sorted(pipelines.items())
