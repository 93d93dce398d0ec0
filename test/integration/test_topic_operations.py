"""Topic operations never stall or skip in silence: records deleted by
retention before they were archived, a consumer group offset moved ahead by
a tool, a topic deleted and created again, partitions added to a running
topic.

Each test counts, per incarnation of the topic, the offsets produced,
archived, recorded as a gap (api.archive_gaps), duplicated (archived twice,
or archived and recorded as skipped) and lost (produced, neither archived
nor recorded as a gap), and keeps the counts in
.stack/operations-report.jsonl."""
import collections
import datetime
import time

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from operations_support import report
from stack_support import (BROKERS, Topic, bucket_objects, holds_for, parse_key, quote_message, sql, sql_value,
                           wait_until)


def admin():
    return AdminClient({"bootstrap.servers": BROKERS})


def gap_rows(pipeline):
    """The pipeline's rows of api.archive_gaps (none where the view does not
    exist: the counts of a stack before 0.4.0 still come out)."""
    if sql_value("SELECT to_regclass('api.archive_gaps') IS NULL"):
        return []
    return sql("SELECT topic, partition, from_offset, to_offset, offsets, reason FROM api.archive_gaps "
               "WHERE pipeline = %s ORDER BY topic, partition, from_offset", [pipeline])


def manifest(pipeline):
    return sql("SELECT object_key, etag, topic, partition, first_offset, last_offset, message_count "
               "FROM stocks_stream.manifest WHERE pipeline = %s ORDER BY topic, partition, first_offset",
               [pipeline])


def tally(produced, folder, rows, gaps, objects):
    """The counts of one incarnation of a topic (`folder`: the topic as its
    keys, the manifest and the gaps name it), from the values produced
    ((partition, offset) -> bytes), the manifest, the gaps and S3: every
    manifest row's object holds exactly the messages of its offsets."""
    covered = collections.Counter()
    for row in (r for r in rows if r.topic == folder):
        lines, etag = objects[row.object_key]
        assert etag == row.etag and len(lines) == row.message_count == row.last_offset - row.first_offset + 1
        assert parse_key(row.object_key)["topic"] == folder
        for i, line in enumerate(lines):
            off = (row.partition, row.first_offset + i)
            assert line == produced[off], f"{row.object_key} line {i} is not offset {off}"
            covered[off] += 1
    skipped = collections.Counter((g.partition, o) for g in gaps if g.topic == folder
                                  for o in range(g.from_offset, g.to_offset + 1))
    return {"produced": len(produced), "archived": sum(covered.values()), "gaps": sum(skipped.values()),
            "duplicated": sum(n - 1 for n in covered.values()) + sum(n - 1 for n in skipped.values())
            + sum(1 for o in skipped if o in covered),
            "lost": sum(1 for o in produced if o not in covered and o not in skipped)}


def health(pipeline):
    return sql("SELECT * FROM api.pipeline_health WHERE kind = 'archive' AND name = %s", [pipeline])[0]


def worker_state(pipeline):
    rows = sql("SELECT state, last_error FROM stocks_stream.worker_status WHERE pipeline = %s", [pipeline])
    return rows[0] if rows else None


def stop_and_wait(p):
    p.stop()
    wait_until(lambda: not p.workers(), 60, f"the workers of {p.name} to exit")


# --- offsets skipped: retention, a group offset moved by a tool -------------------------------

def delete_records_before(topic, offset):
    """Retention: delete every partition's records before `offset`."""
    a = admin()   # kept until the futures are done: a destroyed client fails them
    futures = a.delete_records([TopicPartition(topic.name, part, offset) for part in range(topic.partitions)])
    for f in futures.values():
        f.result(30)


def move_group_offsets(pipeline, topic, offset):
    """A tool (kafka-consumer-groups --reset-offsets) moves the stopped pipeline's group to `offset`."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "stocks_stream." + pipeline.name,
                  "enable.auto.commit": False})

    def committed():
        try:
            c.commit(offsets=[TopicPartition(topic.name, part, offset) for part in range(topic.partitions)],
                     asynchronous=False)
            return True
        except KafkaException:  # the stopped worker's membership has not expired yet
            return False
    try:
        wait_until(committed, 60, "the group to take the tool's offsets")
    finally:
        c.close()


@pytest.mark.parametrize("why", ["retention", "group offset moved"])
def test_skipped_offsets_are_recorded_as_gaps(make_pipeline, why):
    """500 records per partition archived, the pipeline stopped, 500 more
    produced; then retention deletes (or a tool moves the group past) the
    first 300 of those before they were archived.  The pipeline, started
    again, archives the last 200 and records offsets 500..799 of each
    partition as a gap: in archive_gaps, counted in pipeline_health."""
    t = Topic(partitions=2)
    p = make_pipeline(t, batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(i) for i in range(1000)])
    p.wait_archived(1000)
    stop_and_wait(p)
    t.produce([quote_message(i) for i in range(1000, 2000)])
    if why == "retention":
        delete_records_before(t, 800)
    else:
        move_group_offsets(p, t, 800)
    p.start()
    wait_until(lambda: p.archived_count() >= 1400 and p.caught_up(), 120,
               "the records left to be archived")
    gaps = gap_rows(p.name)
    counts = tally(t.produced, t.name, manifest(p.name), gaps, bucket_objects(p.bucket))
    report(f"offsets skipped: {why}", **counts)
    assert counts == {"produced": 2000, "archived": 1400, "gaps": 600, "duplicated": 0, "lost": 0}
    assert [(g.partition, g.from_offset, g.to_offset, g.reason) for g in gaps] == \
        [(0, 500, 799, why), (1, 500, 799, why)]
    h = health(p.name)
    assert (h.gaps, h.offsets_skipped, h.state, h.hint) == (2, 600, "running", None)
    # served read-only to the anonymous role, like the other api views
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("SET ROLE stocks_stream_anon")
        assert conn.execute("SELECT count(*) FROM api.archive_gaps WHERE pipeline = %s",
                            [p.name]).fetchone()[0] == 2
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM api.archive_gaps")


# --- a topic deleted and created again ----------------------------------------------------------

def recreate(topic):
    """Delete the topic and create it again under the same name."""
    a = admin()
    a.delete_topics([topic.name])[topic.name].result(30)

    def created():
        try:
            a.create_topics([NewTopic(topic.name, topic.partitions, 1)])[topic.name].result(30)
            return True
        except Exception:       # the deletion is still under way
            return False
    wait_until(created, 60, f"{topic.name} to be created again")


def produce_stamped(topic, values, stamp_ms):
    """Produce round-robin with the given record timestamp."""
    producer = topic.producer()
    for i, v in enumerate(values):
        producer.produce(topic.name, value=v.encode(), partition=i % topic.partitions, timestamp=stamp_ms,
                         on_delivery=topic._on_delivery)
    assert producer.flush(60) == 0


def test_a_recreated_topic_is_held_then_resumed_by_one_call(make_pipeline):
    """400 records archived; the topic is deleted and created again and gets
    200 records stamped an hour ago and 100 stamped now.  The worker holds
    (state and hint in pipeline_health) and archives nothing of the new
    topic; reset_pipeline_offsets(start => half an hour ago) resumes it:
    the 200 older records are recorded as a gap, the 100 newer archived
    under the new topic's own folder, the old objects untouched."""
    t = Topic(partitions=2)
    p = make_pipeline(t, batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(i) for i in range(400)])
    p.wait_archived(400)
    old_produced, old_objects = dict(t.produced), {k: etag for k, (_, etag) in p.objects().items()}

    recreate(t)
    t.produced = {}
    now_ms = int(time.time() * 1000)
    produce_stamped(t, [quote_message(i) for i in range(400, 600)], now_ms - 3600 * 1000)
    produce_stamped(t, [quote_message(i) for i in range(600, 700)], now_ms)
    new_count = lambda: sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s "
                                  "AND topic <> %s", [p.name, t.name])
    try:
        wait_until(lambda: (worker_state(p.name) or [None])[0] == "topic re-created", 60,
                   "the worker to hold the re-created topic")
    except AssertionError as e:
        counts = {"archived_as_old_topic": p.archived_count() - 400, "archived_as_new_topic": new_count(),
                  "state": worker_state(p.name)}
        report("topic re-created (held?)", **counts)
        raise AssertionError(f"{e}; {counts}") from None
    h = health(p.name)
    assert h.state == "topic re-created"
    assert f"stocks_stream.reset_pipeline_offsets('{p.name}', start => 'earliest')" in h.hint
    assert "reset_pipeline_offsets" in worker_state(p.name).last_error
    holds_for(lambda: p.archived_count() == 400 and new_count() == 0, 3, "nothing archived while held")

    # one call resumes it, from half an hour ago
    start = datetime.datetime.fromtimestamp(now_ms / 1000 - 1800, datetime.timezone.utc)
    rows = sql("SELECT * FROM stocks_stream.reset_pipeline_offsets(%s, start => %s)", [p.name, start])
    assert [(r.partition, r.start_offset, r.offsets_skipped) for r in rows] == [(0, 100, 100), (1, 100, 100)]
    folder = sql_value("SELECT key_topic FROM stocks_stream.pipeline_topics p JOIN stocks_stream.pipelines USING "
                       "(pipeline_id) WHERE name = %s", [p.name])
    assert folder.startswith(t.name + "~") and len(folder) == len(t.name) + 23
    wait_until(lambda: new_count() > 0 and p.caught_up(), 120, "the new topic to be archived")

    objects, rows, gaps = bucket_objects(p.bucket), manifest(p.name), gap_rows(p.name)
    old = tally(old_produced, t.name, rows, gaps, objects)
    new = tally(t.produced, folder, rows, gaps, objects)
    report("topic re-created: the old topic", **old)
    report("topic re-created: the new topic", **new)
    assert old == {"produced": 400, "archived": 400, "gaps": 0, "duplicated": 0, "lost": 0}
    assert new == {"produced": 300, "archived": 100, "gaps": 200, "duplicated": 0, "lost": 0}
    assert {k: e for k, (_, e) in objects.items() if k in old_objects} == old_objects, "an old object changed"
    assert {g.reason for g in gaps} == {"topic re-created"}
    h = health(p.name)
    assert (h.state, h.hint, h.gaps, h.offsets_skipped) == ("running", None, 2, 200)


def test_reset_pipeline_offsets_checks_its_arguments(make_pipeline):
    p = make_pipeline(Topic(partitions=1))
    for args, code, hint in [
            ((p.name, "yesterday-ish"), "22023", "'earliest', 'latest' or a timestamp"),
            ((p.name, None), "22004", "'earliest', 'latest' or a timestamp"),
            (("no_such_pipeline", "earliest"), "42704", "SELECT name FROM stocks_stream.pipelines"),
            ((None, "latest"), "22004", "SELECT name FROM stocks_stream.pipelines")]:
        with pytest.raises(psycopg.Error) as e:
            sql("SELECT * FROM stocks_stream.reset_pipeline_offsets(%s, start => %s::text)", list(args))
        assert e.value.sqlstate == code, e.value
        assert hint in e.value.diag.message_hint
    # a reset to 'latest' of a pipeline that never ran skips what the topic holds, recorded
    t = p.topic
    t.produce([quote_message(i) for i in range(10)])
    rows = sql("SELECT * FROM stocks_stream.reset_pipeline_offsets(%s, 'latest')", [p.name])
    assert [(r.partition, r.previous_offset, r.start_offset, r.offsets_skipped) for r in rows] == [(0, None, 10, 10)]
    assert [(g.from_offset, g.to_offset, g.reason) for g in gap_rows(p.name)] == [(0, 9, "reset")]
    # never back before what was archived: 'earliest' now leaves it where it is
    rows = sql("SELECT * FROM stocks_stream.reset_pipeline_offsets(%s, 'earliest')", [p.name])
    assert [(r.previous_offset, r.start_offset, r.offsets_skipped) for r in rows] == [(10, 10, 0)]


# --- partitions added to a running topic --------------------------------------------------------

def test_partitions_added_to_a_running_topic_are_archived_within_10_s(make_pipeline):
    t = Topic(partitions=2)
    p = make_pipeline(t, batch_max_age_ms=300)
    p.start()
    t.produce([quote_message(i) for i in range(200)])
    p.wait_archived(200)
    a = admin()
    a.create_partitions([NewPartitions(t.name, 4)])[t.name].result(30)
    t.partitions = 4
    t.produce([quote_message(i) for i in range(200, 400)])   # 50 to each partition
    delivered = time.time()
    new_parts = lambda: sql_value("SELECT count(DISTINCT partition) FROM stocks_stream.manifest "
                                  "WHERE pipeline = %s AND partition >= 2", [p.name])
    try:
        wait_until(lambda: new_parts() == 2, 10, "the added partitions' first objects")
    finally:
        report("partitions added: seconds to the first objects", seconds=round(time.time() - delivered, 1),
               partitions_archived=new_parts())
    wait_until(lambda: p.caught_up(), 60, "everything archived")
    counts = tally(t.produced, t.name, manifest(p.name), gap_rows(p.name), bucket_objects(p.bucket))
    report("partitions added", **counts)
    assert counts == {"produced": 400, "archived": 400, "gaps": 0, "duplicated": 0, "lost": 0}
