"""Helpers of the operations tests: more PostgreSQL instances beside the
stack's own, and the exactly-once accounting of a topic (produced,
archived, duplicated, lost) from manifests and S3."""
import json
import os
import socket
import uuid

from stack_support import bucket_objects, high_watermarks, parse_key, sql, stack, wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """A PostgreSQL cluster started by `scripts/stack cluster`, with the
    extension preloaded and database `stocks` (the one its launcher serves)
    created without the extension.  It shares the stack's Kafka and MinIO.
    `major` runs another PostgreSQL major version than the stack's
    (`scripts/stack pg-majors`)."""

    def __init__(self, label, major=None):
        self.name = f"{label}_{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        stack("cluster", "start", self.name, str(self.port), *([str(major)] if major else []))
        # as on the stack (conftest.records_of_any_time): the records carry
        # fixed event times, Kafka stamps them now
        loaded = self.value("SELECT pg_conf_load_time()", db="postgres")
        self.sql("ALTER SYSTEM SET stocks_stream.event_time_window = 0", db="postgres")
        self.sql("SELECT pg_reload_conf()", db="postgres")
        wait_until(lambda: self.value("SELECT pg_conf_load_time()", db="postgres") > loaded, 30,
                   "the instance's settings to be reloaded")

    def sql(self, query, params=None, db="stocks"):
        return sql(query, params, host="127.0.0.1", port=self.port, user="postgres", dbname=db)

    def value(self, query, params=None, db="stocks"):
        rows = self.sql(query, params, db)
        assert rows and len(rows) == 1 and len(rows[0]) == 1, f"one value expected from {query!r}: {rows!r}"
        return rows[0][0]

    def dsn_args(self, db="stocks"):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db]

    def drop(self):
        stack("cluster", "drop", self.name)


def manifest_rows(run_sql, pipeline):
    return run_sql("SELECT object_key, partition, first_offset, last_offset, message_count, etag "
                   "FROM stocks_stream.manifest WHERE pipeline = %s ORDER BY partition, first_offset",
                   [pipeline])


def account(topic, manifests, bucket):
    """Exactly-once accounting of a topic archived to a bucket, from the
    manifest rows of every instance: every manifest row's object is in S3
    with the very lines it names; objects in S3 that no manifest names
    (a writer that lost its partition while its PUT was under way) hold,
    under their key, exactly the messages of their offsets.  Returns the
    counts: produced, archived, duplicated, lost, orphan_objects."""
    hw = high_watermarks(topic.name, topic.partitions)
    produced = sum(hw.values())
    objects = bucket_objects(bucket)
    covered = {}
    archived = 0
    for row in manifests:
        assert row.object_key in objects, f"manifest names {row.object_key}, which S3 does not hold"
        lines, etag = objects[row.object_key]
        assert etag == row.etag, f"{row.object_key} is not the object the manifest recorded"
        assert len(lines) == row.message_count == row.last_offset - row.first_offset + 1
        for i in range(row.message_count):
            off = (row.partition, row.first_offset + i)
            covered[off] = covered.get(off, 0) + 1
            if topic.produced:
                assert lines[i] == topic.produced[off], f"{row.object_key} line {i} is not offset {off}"
        archived += row.message_count
    orphans = set(objects) - {r.object_key for r in manifests}
    for key in orphans:
        k = parse_key(key)
        lines, _ = objects[key]
        assert k and k["last_offset"] is not None and len(lines) == k["last_offset"] - k["first_offset"] + 1, \
            f"orphan object {key} does not hold what its key names"
        if topic.produced:
            for i, line in enumerate(lines):
                assert line == topic.produced[(k["partition"], k["first_offset"] + i)]
    duplicated = sum(n - 1 for n in covered.values())
    lost = sum(1 for p, end in hw.items() for o in range(end) if (p, o) not in covered)
    return {"produced": produced, "archived": archived, "duplicated": duplicated, "lost": lost,
            "orphan_objects": len(orphans)}


def report(what, **counts):
    """Keep a test's counts (for the record of a run); returns them."""
    path = os.path.join(os.environ.get("STOCKS_STREAM_STACK", "."), "operations-report.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps({"test": what, **counts}, default=int) + "\n")
    return counts
