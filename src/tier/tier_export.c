/*
 * tier_export.c
 *	  stocks_stream._lake_export(): one silver day's partition written to S3
 *	  as Parquet objects (docs/lake.md, "Tiering").
 *
 * The partition's rows come in (symbol, time) order (tier_order.c: two
 * sequential scans and a sort in stocks_stream.lake_sort_mem, a run of
 * symbols at a time) into the writer of the current object
 * (src/lake/silver_object.c), which encodes a row group every
 * stocks_stream.lake_row_group_rows rows.  Once the object's row groups
 * reach stocks_stream.lake_object_size it is closed, PUT and freed, and
 * the next rows go to the next object: the backend holds one object, one
 * row group and lake_sort_mem of rows at most.  Keys are deterministic
 * (<prefix>/silver/<table>/day=YYYY-MM-DD/<table>-YYYY-MM-DD-<n>.parquet,
 * n from first_part on), so a redo overwrites what a crashed run put.
 * The function writes no table: it returns each object's rows and
 * checksum per symbol, and sql/lake.sql records them.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/memutils.h"

#include "core/settings.h"
#include "lake/silver_object.h"
#include "s3/s3.h"
#include "tier/tier_order.h"
#include "tier/tier_sums.h"

typedef struct Export
{
	SilverTable table;
	const char *bucket;
	const char *key_stem; /* <prefix>/silver/<table>/day=D/<table>-D- */
	int part;			  /* n of the object being written */
	MemoryContext object_cxt;
	SilverWriter *writer;
	SilverRow *row;
	List *sums;
	int64 rows;
	ReturnSetInfo *rsinfo;
} Export;

/* PUT one object with the extension's S3 client, waiting for it cancellably. */
static void
put_object(const char *bucket, const char *key, const char *data, size_t len)
{
	S3Async *req = ss_s3_async_put(bucket, key, data, len, "application/vnd.apache.parquet");
	S3Result res;

	PG_TRY();
	{
		while (!ss_s3_async_done(req))
		{
			CHECK_FOR_INTERRUPTS();
			ss_s3_async_step(100);
		}
	}
	PG_CATCH();
	{
		(void) ss_s3_async_end(req, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	res = ss_s3_async_end(req, NULL);
	if (!res.ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("stocks_stream._lake_export: could not put s3://%s/%s: %s", bucket, key,
						res.error),
				 errhint("The day stays in Postgres; the next tier_to_lake() tries again.")));
}

static void
start_object(Export *e)
{
	MemoryContext old = MemoryContextSwitchTo(e->object_cxt);

	e->writer = ss_silver_object_writer(e->table, ss_settings_lake_row_group_rows);
	e->sums = NIL;
	e->rows = 0;
	MemoryContextSwitchTo(old);
}

/* Close the current object, PUT it, report its sums, free it. */
static void
finish_object(Export *e)
{
	MemoryContext old = MemoryContextSwitchTo(e->object_cxt);
	size_t len;
	const char *data = ss_silver_object_finish(e->writer, &len);
	char *key = psprintf("%s%d.parquet", e->key_stem, e->part);
	Datum lead[3];

	put_object(e->bucket, key, data, len);
	ss_tier_sums_crash_point("export_put");
	lead[0] = Int32GetDatum(e->part);
	lead[1] = CStringGetTextDatum(key);
	lead[2] = Int64GetDatum((int64) len);
	ss_tier_sums_emit(e->sums, e->rsinfo, lead, 3);
	MemoryContextSwitchTo(old);
	MemoryContextReset(e->object_cxt); /* frees the writer and its object */
	e->writer = NULL;
	e->part++;
}

/* One row into the current object (a new one if none); the object closed once full. */
static void
add_row(void *arg, TupleDesc desc, HeapTuple tuple)
{
	Export *e = arg;
	MemoryContext old;

	if (e->writer == NULL)
		start_object(e);
	ss_silver_object_row_from_tuple(e->row, desc, tuple);
	ss_silver_object_add(e->writer, e->row);
	old = MemoryContextSwitchTo(e->object_cxt);
	e->sums = ss_tier_sums_add(e->sums, e->row);
	MemoryContextSwitchTo(old);
	e->rows++;
	if (ss_silver_object_bytes(e->writer) >= (int64) ss_settings_lake_object_kb * 1024)
		finish_object(e);
}

static char *
key_stem(SilverTable t, const char *prefix, DateADT day)
{
	const char *name = t == SILVER_TRADES ? "trades" : "quotes";
	int y, m, d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	return psprintf("%s/silver/%s/day=%04d-%02d-%02d/%s-%04d-%02d-%02d-", prefix, name, y, m, d,
					name, y, m, d);
}

PG_FUNCTION_INFO_V1(ss_lake_export);

/*
 * _lake_export(table_name, day, bucket, prefix, first_part) RETURNS TABLE
 * (part, object_key, bytes, symbol, row_count, checksum): one row per
 * object and symbol.
 */
Datum
ss_lake_export(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Export e = {0};

	for (int i = 1; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("stocks_stream._lake_export: no argument may be NULL")));
	e.table = ss_tier_sums_table_arg(fcinfo, 0, "_lake_export");
	e.bucket = text_to_cstring(PG_GETARG_TEXT_PP(2));
	e.key_stem = key_stem(e.table, text_to_cstring(PG_GETARG_TEXT_PP(3)), PG_GETARG_DATEADT(1));
	e.part = PG_GETARG_INT32(4);
	e.rsinfo = rsinfo;
	InitMaterializedSRF(fcinfo, 0);
	e.object_cxt = AllocSetContextCreate(CurrentMemoryContext, "stocks_stream lake object",
										 ALLOCSET_DEFAULT_SIZES);
	e.row = ss_silver_object_row(e.table);
	ss_tier_order_read(e.table, PG_GETARG_DATEADT(1), add_row, &e);
	if (e.writer != NULL && e.rows > 0)
		finish_object(&e);
	MemoryContextDelete(e.object_cxt);
	return (Datum) 0;
}
