/*
 * tier_sums.c
 *	  What the tiering functions share: rows and checksums per symbol (the
 *	  comparison of a day in Postgres with its objects in the lake), the
 *	  name of a day's partition, and the crash points of the crash tests.
 *
 * Rows come sorted by symbol (the partition's (symbol, time) index, and
 * the objects written in that order), so a symbol's sums are the last
 * entry of the list or a new one; a symbol met twice (an object out of
 * order) makes two entries, which the SQL that compares adds up.
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"

#include "core/settings.h"
#include "tier/tier_sums.h"

List *
ss_tier_sums_add(List *sums, const SilverRow *row)
{
	size_t len;
	const char *symbol = ss_silver_object_row_symbol(row, &len);
	TierSum *last = sums != NIL ? llast(sums) : NULL;

	if (last == NULL || strlen(last->symbol) != len || memcmp(last->symbol, symbol, len) != 0)
	{
		last = palloc0(sizeof(TierSum));
		last->symbol = pnstrdup(symbol, len);
		sums = lappend(sums, last);
	}
	last->rows++;
	last->checksum += ss_silver_object_row_hash(row);
	return sums;
}

/* One result row per symbol: the lead columns, then symbol, rows, checksum. */
void
ss_tier_sums_emit(List *sums, ReturnSetInfo *rsinfo, Datum *lead, int nlead)
{
	ListCell *lc;

	foreach (lc, sums)
	{
		TierSum *s = lfirst(lc);
		Datum values[8];
		bool nulls[8] = {0};

		Assert(nlead + 3 <= lengthof(values));
		for (int i = 0; i < nlead; i++)
			values[i] = lead[i];
		values[nlead] = CStringGetTextDatum(s->symbol);
		values[nlead + 1] = Int64GetDatum(s->rows);
		values[nlead + 2] = Int64GetDatum((int64) s->checksum);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

SilverTable
ss_tier_sums_table_arg(FunctionCallInfo fcinfo, int arg, const char *fn)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream.%s: table_name must not be NULL", fn)));
	return ss_silver_object_table(text_to_cstring(PG_GETARG_TEXT_PP(arg)));
}

/* The name of a day's partition: trades_YYYYMMDD. */
char *
ss_tier_sums_partition(SilverTable t, DateADT day)
{
	int y, m, d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	return psprintf("%s_%04d%02d%02d", t == SILVER_TRADES ? "trades" : "quotes", y, m, d);
}

/*
 * For the crash tests: when stocks_stream.test_crash_point (superuser-only,
 * hidden) names this point, the backend kills itself with SIGKILL, so the
 * server goes through crash recovery as after a real crash.
 */
void
ss_tier_sums_crash_point(const char *point)
{
	if (ss_settings_test_crash_point == NULL || strcmp(ss_settings_test_crash_point, point) != 0)
		return;
	ereport(LOG, (errmsg("stocks_stream.tier_to_lake: crashing at \"%s\" "
						 "(stocks_stream.test_crash_point)",
						 point)));
	kill(MyProcPid, SIGKILL);
	for (;;)
		pg_usleep(1000000L);
}
