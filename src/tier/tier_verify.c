/*
 * tier_verify.c
 *	  The two sides tiering compares before a day leaves Postgres
 *	  (docs/lake.md, "Verification"): stocks_stream._lake_read_objects()
 *	  reads objects back from S3 and counts their rows and checksums per
 *	  symbol; stocks_stream._lake_scan_day() does the same for the day's
 *	  partition as it is now.  sql/lake.sql compares them.
 *
 * An object is outside bytes: it is read within stocks_stream.max_object_size
 * (the S3 client's bound), the library refuses what is not Parquet or lacks
 * the table's columns, and a row count that differs from the object's
 * footer is an error.  One object and one decoded row group are held at a
 * time.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/memutils.h"

#include "lake/silver_object.h"
#include "s3/s3.h"
#include "tier/tier_sums.h"

static void
read_object(SilverTable t, const char *bucket, const char *key, ReturnSetInfo *rsinfo)
{
	StringInfoData body;
	S3Result res;
	SilverReader *r;
	SilverRow *row = ss_silver_object_row(t);
	List *sums = NIL;
	int64 rows = 0;
	int64 footer;
	Datum lead[1];

	initStringInfo(&body);
	res = ss_s3_get_object(bucket, key, &body);
	if (!res.ok)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream._lake_read_objects: could not get s3://%s/%s: %s",
							   bucket, key, res.error)));
	r = ss_silver_object_open(t, body.data, body.len, key);
	pfree(body.data); /* the library holds its own copy */
	footer = ss_silver_object_rows(r);
	while (ss_silver_object_next(r, row))
	{
		CHECK_FOR_INTERRUPTS();
		sums = ss_tier_sums_add(sums, row);
		rows++;
	}
	if (rows != footer)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("stocks_stream._lake_read_objects: s3://%s/%s gave %lld rows, its "
							   "footer counts %lld",
							   bucket, key, (long long) rows, (long long) footer)));
	lead[0] = CStringGetTextDatum(key);
	ss_tier_sums_emit(sums, rsinfo, lead, 1);
}

PG_FUNCTION_INFO_V1(ss_lake_read_objects);

/*
 * _lake_read_objects(table_name, bucket, keys text[]) RETURNS TABLE
 * (object_key, symbol, row_count, checksum)
 */
Datum
ss_lake_read_objects(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SilverTable t = ss_tier_sums_table_arg(fcinfo, 0, "_lake_read_objects");
	MemoryContext object_cxt, old;
	Datum *keys;
	bool *nulls;
	int n;
	char *bucket;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream._lake_read_objects: no argument may be NULL")));
	bucket = text_to_cstring(PG_GETARG_TEXT_PP(1));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &keys, &nulls,
					  &n);
	InitMaterializedSRF(fcinfo, 0);
	object_cxt = AllocSetContextCreate(CurrentMemoryContext, "stocks_stream lake read",
									   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		old = MemoryContextSwitchTo(object_cxt);
		read_object(t, bucket, TextDatumGetCString(keys[i]), rsinfo);
		MemoryContextSwitchTo(old);
		MemoryContextReset(object_cxt); /* frees the reader */
	}
	MemoryContextDelete(object_cxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ss_lake_scan_day);

/*
 * _lake_scan_day(table_name, day) RETURNS TABLE (symbol, row_count,
 * checksum): the day's partition as it is now, through a cursor in no
 * order (the sums are per symbol).
 */
Datum
ss_lake_scan_day(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SilverTable t = ss_tier_sums_table_arg(fcinfo, 0, "_lake_scan_day");
	MemoryContext sums_cxt, batch_cxt, old;
	SilverRow *row;
	List *sums = NIL;
	HTAB *symbols = NULL;
	Portal portal;

	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream._lake_scan_day: day must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	sums_cxt = CurrentMemoryContext;
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "stocks_stream lake rows",
									  ALLOCSET_DEFAULT_SIZES);
	row = ss_silver_object_row(t);
	portal = ss_tier_sums_open_day(t, PG_GETARG_DATEADT(1), "_lake_scan_day");
	while (ss_tier_sums_fetch(portal, t))
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			old = MemoryContextSwitchTo(batch_cxt);
			ss_silver_object_row_from_tuple(row, SPI_tuptable->tupdesc, SPI_tuptable->vals[i]);
			MemoryContextSwitchTo(sums_cxt);
			sums = ss_tier_sums_add_any(&symbols, sums, row);
			MemoryContextSwitchTo(old);
		}
		MemoryContextReset(batch_cxt);
	}
	ss_tier_sums_close_day(portal);
	ss_tier_sums_emit(sums, rsinfo, NULL, 0);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ss_lake_crash_point);

/* _lake_crash_point(point): the crash tests' hook (tier_sums.c). */
Datum
ss_lake_crash_point(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
		ss_tier_sums_crash_point(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
