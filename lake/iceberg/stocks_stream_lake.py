"""stocks_stream's lake commit: registers Parquet objects already in S3 in
Iceberg (v2) tables whose catalog is the schema stocks_stream_lake of the
same PostgreSQL (Iceberg's JDBC catalog, through pyiceberg's SqlCatalog),
without rewriting a byte of data (pyiceberg's add_files):

- bronze.<pipeline>: the Parquet objects of an archive pipeline (its
  manifest rows whose key ends in .parquet);
- silver.quotes, silver.trades: the verified objects of tiered silver days
  (stocks_stream.lake_objects), partitioned by day of their time column.

Exactly once (sql/iceberg.sql): a batch of objects is claimed in Postgres
first (lake_claim, committed), then added as one snapshot whose summary
property stocks-stream.commit-id names the batch, then marked with that
snapshot's id (lake_mark_commit).  A batch claimed and not marked is looked
up in its table's snapshots by that property on the next run: found, it is
marked; not found, it is added.  One run at a time holds an advisory lock.

Connection: the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE); S3: S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (what
`scripts/stack env` exports).  docs/lake.md, "Iceberg tables".

STOCKS_STREAM_LAKE_CRASH_AT=<point> (tests only) kills the process with
SIGKILL at one of CRASH_POINTS, to prove a re-run finishes the batch.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import urllib.parse
from dataclasses import dataclass

import psycopg
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (BinaryType, DoubleType, IntegerType, ListType, LongType, NestedField, StringType,
                             TimestamptzType)

CATALOG_NAME = "stocks_stream"
CATALOG_SCHEMA = "stocks_stream_lake"
COMMIT_PROPERTY = "stocks-stream.commit-id"
CRASH_ENV = "STOCKS_STREAM_LAKE_CRASH_AT"
# claimed: the batch is recorded in Postgres, nothing written to S3;
# files-written: the snapshot's manifests and metadata file are in S3, the
# catalog does not point at them; committed: the catalog points at the new
# snapshot, the batch is not marked
CRASH_POINTS = ("claimed", "files-written", "committed")
LOCK_KEYS = (0x5354524D, 0x4C414B45)    # pg_advisory_lock(int, int): one lake commit at a time

log = logging.getLogger("stocks_stream_lake")


def _field(fid, name, kind, required=False):
    return NestedField(field_id=fid, name=name, field_type=kind, required=required)


# The columns of the bronze Parquet objects (lake/parquet_ffi, docs/sql-api.md)
BRONZE_SCHEMA = Schema(
    _field(1, "topic", StringType(), True), _field(2, "partition", IntegerType(), True),
    _field(3, "offset", LongType(), True), _field(4, "timestamp", TimestamptzType()),
    _field(5, "key", BinaryType()), _field(6, "headers", StringType()), _field(7, "value", StringType(), True))

# The tiered silver objects: the tables' columns, in their order; required
# where the Parquet objects are (the tiering contract, docs/lake.md)
SILVER_SCHEMAS = {
    "trades": Schema(
        _field(1, "symbol", StringType(), True), _field(2, "trade_time", TimestamptzType(), True),
        _field(3, "price", DoubleType(), True), _field(4, "volume", DoubleType(), True),
        _field(5, "conditions", ListType(element_id=10, element_type=StringType(), element_required=False)),
        _field(6, "source_topic", StringType()), _field(7, "source_partition", IntegerType()),
        _field(8, "source_offset", LongType()), _field(9, "loaded_at", TimestamptzType())),
    "quotes": Schema(
        _field(1, "symbol", StringType(), True), _field(2, "quote_time", TimestamptzType(), True),
        _field(3, "price", DoubleType(), True), _field(4, "change", DoubleType()),
        _field(5, "change_pct", DoubleType()), _field(6, "day_high", DoubleType(), True),
        _field(7, "day_low", DoubleType(), True), _field(8, "day_open", DoubleType(), True),
        _field(9, "prev_close", DoubleType(), True), _field(10, "fetched_at", TimestamptzType()),
        _field(11, "source_topic", StringType(), True), _field(12, "source_partition", IntegerType(), True),
        _field(13, "source_offset", LongType(), True), _field(14, "loaded_at", TimestamptzType(), True)),
}
SILVER_TIME = {"trades": "trade_time", "quotes": "quote_time"}


def crash_point(point: str) -> None:
    """The tests' hook: die here, as a killed process dies."""
    if os.environ.get(CRASH_ENV) == point:
        log.warning("%s=%s: killing this process", CRASH_ENV, point)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


class LakeCatalog(SqlCatalog):
    """pyiceberg's SqlCatalog with the crash hook between writing a commit's
    files and pointing the catalog at them."""

    arm_files_written = False

    def _write_metadata(self, metadata, io, metadata_path):
        super()._write_metadata(metadata, io, metadata_path)
        if self.arm_files_written:
            crash_point("files-written")


def catalog_uri(user: str | None = None) -> str:
    """SQLAlchemy's URL for psycopg: libpq finds the server (and the user,
    unless given) from the environment; the search_path is the catalog's
    schema."""
    who = urllib.parse.quote(user, safe="") + "@" if user else ""
    return f"postgresql+psycopg://{who}?" + urllib.parse.urlencode({"options": f"-csearch_path={CATALOG_SCHEMA}"})


def s3_properties(env=os.environ) -> dict[str, str]:
    props = {"s3.region": env.get("S3_REGION", "us-east-1")}
    for prop, var in (("s3.endpoint", "S3_ENDPOINT"), ("s3.access-key-id", "S3_ACCESS_KEY"),
                      ("s3.secret-access-key", "S3_SECRET_KEY")):
        if env.get(var):
            props[prop] = env[var]
    return props


def open_catalog(env=os.environ) -> LakeCatalog:
    return LakeCatalog(CATALOG_NAME, uri=catalog_uri(), init_catalog_tables="false", **s3_properties(env))


def table_location(bucket: str, namespace: str, name: str) -> str:
    return f"s3://{bucket}/iceberg/{namespace}/{name}"


# bronze's key and JSON columns get no bounds in the manifests: bounds of
# raw values prune nothing, and the Parquet statistics of a JSON column are
# bytes, which pyiceberg cannot serialise as a string's
BRONZE_PROPERTIES = {f"write.metadata.metrics.column.{c}": "counts" for c in ("key", "headers", "value")}


def table_definition(namespace: str, name: str):
    """(schema, partition spec, sort order, properties) of a table of the lake."""
    if namespace == "bronze":
        return BRONZE_SCHEMA, PartitionSpec(), SortOrder(), BRONZE_PROPERTIES
    schema = SILVER_SCHEMAS[name]
    time = schema.find_field(SILVER_TIME[name])
    spec = PartitionSpec(PartitionField(source_id=time.field_id, field_id=1000, transform=DayTransform(),
                                        name=f"{time.name}_day"))
    order = SortOrder(SortField(source_id=schema.find_field("symbol").field_id, transform=IdentityTransform()),
                      SortField(source_id=time.field_id, transform=IdentityTransform()))
    return schema, spec, order, {}


def ensure_table(catalog: LakeCatalog, namespace: str, name: str, bucket: str) -> Table:
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        pass
    catalog.create_namespace_if_not_exists(namespace)
    schema, spec, order, properties = table_definition(namespace, name)
    log.info("creating the Iceberg table %s.%s at %s", namespace, name, table_location(bucket, namespace, name))
    return catalog.create_table_if_not_exists(
        (namespace, name), schema, location=table_location(bucket, namespace, name), partition_spec=spec,
        sort_order=order, properties={"format-version": "2", **properties,
                                      "schema.name-mapping.default": schema.name_mapping.model_dump_json()})


def find_snapshot(table: Table, commit_id: int):
    """The snapshot whose summary names the batch, if the table has one."""
    for snapshot in table.snapshots():
        if snapshot.summary is not None and snapshot.summary[COMMIT_PROPERTY] == str(commit_id):
            return snapshot
    return None


@dataclass
class Committed:
    commit_id: int
    table: str
    objects: int
    snapshot_id: int
    how: str          # 'added', or 'found' when an earlier run had committed it


def finish(conn: psycopg.Connection, catalog: LakeCatalog, commit_id: int) -> Committed:
    """Commit a claimed batch as one snapshot, once, and mark it."""
    namespace, name = conn.execute(
        "SELECT table_namespace, table_name FROM stocks_stream.lake_commits WHERE commit_id = %s",
        [commit_id]).fetchone()
    objects = conn.execute("SELECT bucket, object_key FROM stocks_stream.lake_commit_objects "
                           "WHERE commit_id = %s ORDER BY object_key", [commit_id]).fetchall()
    table = ensure_table(catalog, namespace, name, objects[0][0])
    snapshot = find_snapshot(table, commit_id)
    how = "found"
    if snapshot is None:
        crash_point("claimed")
        catalog.arm_files_written = True
        try:
            table.add_files([f"s3://{b}/{k}" for b, k in objects],
                            snapshot_properties={COMMIT_PROPERTY: str(commit_id)})
        finally:
            catalog.arm_files_written = False
        snapshot = find_snapshot(table, commit_id)
        assert snapshot is not None, f"the snapshot of lake commit {commit_id} is not in {namespace}.{name}"
        how = "added"
        crash_point("committed")
    conn.execute("SELECT stocks_stream.lake_mark_commit(%s, %s)", [commit_id, snapshot.snapshot_id])
    done = Committed(commit_id, f"{namespace}.{name}", len(objects), snapshot.snapshot_id, how)
    log.info("lake commit %d: %d objects in %s, snapshot %d (%s)", commit_id, done.objects, done.table,
             done.snapshot_id, how)
    return done


def tables_to_commit(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """bronze.<pipeline> for each pipeline with Parquet objects, and the
    silver tables once stocks_stream.lake_objects exists."""
    tables = [("bronze", r[0]) for r in conn.execute(
        "SELECT p.name FROM stocks_stream.pipelines p WHERE EXISTS (SELECT FROM stocks_stream.manifest m "
        "WHERE m.pipeline = p.name AND m.object_key LIKE '%%.parquet') ORDER BY p.name")]
    if conn.execute("SELECT to_regclass('stocks_stream.lake_objects') IS NOT NULL").fetchone()[0]:
        tables += [("silver", "quotes"), ("silver", "trades")]
    return tables


def commit(conn: psycopg.Connection, catalog: LakeCatalog, batch_objects: int = 1000):
    """Finish every unfinished batch, then claim and commit new ones until no
    object waits.  A table whose commit fails is left for the next run and
    the others go on.  Returns (what was committed, the failures)."""
    done, failed = [], []

    def each(what, step):
        try:
            step()
        except Exception as e:      # isolate the table; the next run retries it
            log.error("%s: %s: %s", what, type(e).__name__, e)
            failed.append((what, e))

    def table(namespace, name):
        while (commit_id := conn.execute("SELECT stocks_stream.lake_claim(%s, %s, %s)",
                                         [namespace, name, batch_objects]).fetchone()[0]) is not None:
            done.append(finish(conn, catalog, commit_id))

    conn.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
    try:
        for (commit_id,) in conn.execute("SELECT commit_id FROM stocks_stream.lake_commits "
                                         "WHERE snapshot_id IS NULL ORDER BY commit_id").fetchall():
            each(f"lake commit {commit_id}", lambda: done.append(finish(conn, catalog, commit_id)))
        for namespace, name in tables_to_commit(conn):
            each(f"{namespace}.{name}", lambda: table(namespace, name))
        return done, failed
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEYS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lake-commit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-objects", type=int, default=1000,
                        help="objects registered per snapshot at most (default 1000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="lake-commit: %(message)s", stream=sys.stderr)
    with psycopg.connect(autocommit=True, application_name="stocks_stream lake-commit") as conn:
        done, failed = commit(conn, open_catalog(), args.batch_objects)
    for c in done:
        print(f"{c.table}\tcommit {c.commit_id}\t{c.objects} objects\tsnapshot {c.snapshot_id}\t{c.how}")
    print(f"lake-commit: {len(done)} commits, {sum(c.objects for c in done)} objects"
          + (f", {len(failed)} failed: {', '.join(what for what, _ in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
