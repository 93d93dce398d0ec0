/*
 * bronze_loader.h
 *	  Loading archived objects into silver, shared by load_bronze() and the
 *	  backfill from S3 listings (bronze_backfill.c).
 */
#ifndef STOCKS_STREAM_BRONZE_LOADER_H
#define STOCKS_STREAM_BRONZE_LOADER_H

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

typedef struct LoadCounts
{
	int64 objects_loaded;
	int64 rows_loaded;
	int64 rows_duplicate;
	int64 rows_quarantined;
	int64 objects_failed;
} LoadCounts;

extern int ss_bronze_loader_execute_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
										 Datum *args, const char *nulls, bool read_only);
struct LoadProgress;

extern void ss_bronze_loader_gunzip(StringInfo in, StringInfo out, const char *key);
extern bool ss_bronze_loader_in_subtransaction(void (*step)(void *arg), void *arg, char **error);
extern List *ss_bronze_loader_pending_objects(text *pipeline, int max_objects, const char *bucket,
											  const char *prefix, const char *after,
											  const char *upto);
extern void ss_bronze_loader_load_objects(List *objects, LoadCounts *counts,
										  struct LoadProgress *progress);
extern Datum ss_bronze_loader_counts_row(FunctionCallInfo fcinfo, const LoadCounts *counts);

#endif
