/*
 * tier_sums.h
 *	  Rows and checksums per symbol, as tiering compares Postgres and the lake.
 */
#ifndef STOCKS_STREAM_TIER_SUMS_H
#define STOCKS_STREAM_TIER_SUMS_H

#include "funcapi.h"
#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/portal.h"

#include "lake/silver_object.h"

/* one symbol's rows and the sum of their checksums (modulo 2^64) */
typedef struct TierSum
{
	char *symbol;
	int64 rows;
	uint64 checksum;
} TierSum;

/* a symbol as the key of a hash table: its bytes */
typedef struct TierSymbolKey
{
	const char *ptr;
	size_t len;
} TierSymbolKey;

extern List *ss_tier_sums_add(List *sums, const SilverRow *row);
extern void ss_tier_sums_emit(List *sums, ReturnSetInfo *rsinfo, Datum *lead, int nlead);
extern SilverTable ss_tier_sums_table_arg(FunctionCallInfo fcinfo, int arg, const char *fn);
extern char *ss_tier_sums_partition(SilverTable t, DateADT day);
extern HTAB *ss_tier_sums_symbols(Size entrysize);
extern void *ss_tier_sums_symbol(HTAB *symbols, const char *ptr, size_t len, bool *found);
extern List *ss_tier_sums_add_any(HTAB **symbols, List *sums, const SilverRow *row);
extern Portal ss_tier_sums_open(const char *query, int nargs, Oid *argtypes, Datum *values,
								const char *fn);
extern Portal ss_tier_sums_open_day(SilverTable t, DateADT day, const char *fn);
extern bool ss_tier_sums_fetch(Portal portal, SilverTable t);
extern void ss_tier_sums_close_day(Portal portal);
extern void ss_tier_sums_crash_point(const char *point);

#endif
