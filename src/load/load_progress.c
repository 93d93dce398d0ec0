/*
 * load_progress.c
 *	  Progress of a long load_bronze() or load_bronze_prefix() call, in a
 *	  NOTICE every stocks_stream.progress_interval.
 *
 * A backfill of millions of objects runs for hours in one call; a person
 * watching it (psql shows NOTICEs as they come) reads how many objects are
 * done of those taken on, the rows so far, the rate, and the key it is at
 * (a listing goes in key order, so the key says how far through the
 * bucket it is), e.g.
 *
 *	 NOTICE:  load_bronze_prefix: 5000 of 10000 objects listed so far loaded (50%),
 *			  5000 rows, 0 failed, 4800 objects/s, at "AAPL/1700003125.json"
 *
 * A call shorter than the interval says nothing.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "core/settings.h"
#include "load/load_progress.h"

void
ss_load_progress_begin(LoadProgress *p, const char *caller, const char *doing, bool listing)
{
	p->caller = caller;
	p->doing = doing;
	p->listing = listing;
	p->total = 0;
	p->done = 0;
	p->started = p->reported = GetCurrentTimestamp();
}

/*
 * One more object done (the one at `key`): report when the interval has
 * passed since the last report.
 */
void
ss_load_progress_step(LoadProgress *p, const LoadCounts *counts, const char *key)
{
	TimestampTz now;
	double seconds;

	p->done++;
	if (ss_settings_progress_interval_ms < 0)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(p->reported, now, ss_settings_progress_interval_ms))
		return;
	p->reported = now;
	seconds = (double) (now - p->started) / USECS_PER_SEC;
	ereport(
		NOTICE,
		(errmsg("stocks_stream.%s: %lld of %lld objects%s %s (%d%%), %lld rows, %lld failed, "
				"%.0f objects/s, at \"%s\"",
				p->caller, (long long) p->done, (long long) p->total,
				p->listing ? " listed so far" : "", p->doing,
				(int) (100 * p->done / Max(p->total, 1)), (long long) counts->rows_loaded,
				(long long) counts->objects_failed, seconds > 0 ? p->done / seconds : 0.0, key)));
}
