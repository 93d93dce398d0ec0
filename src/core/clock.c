/*
 * clock.c
 *	  The clock of the archive worker's flush rules: now, and how long to
 *	  wait for a time on it (src/README.md, "A clock the tests can move").
 *
 * Real by default.  While stocks_stream.test_clock (superuser-only, hidden,
 * for tests only) is set, the clock reads that time and stands still
 * between reloads: a test makes a batch exactly as old as it wants,
 * without waiting for the age in real time.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "core/clock.h"
#include "core/settings.h"

/* how often a worker looks at a moved clock: it moves with a reload */
#define TEST_CLOCK_POLL_MS 100

/* Unix seconds of PostgreSQL's epoch (2000-01-01 00:00 UTC) */
#define POSTGRES_EPOCH_UNIX ((double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

static bool
test_clock_set(void)
{
	return ss_settings_test_clock > 0;
}

TimestampTz
ss_clock_now(void)
{
	if (test_clock_set())
		return (TimestampTz) ((ss_settings_test_clock - POSTGRES_EPOCH_UNIX) * USECS_PER_SEC);
	return GetCurrentTimestamp();
}

/*
 * Milliseconds until `due` on this clock (0 when it has come).  The test
 * clock moves only when a test moves it, so waiting for it is looking
 * again soon.
 */
long
ss_clock_wait_ms(TimestampTz due)
{
	TimestampTz now = ss_clock_now();

	if (due <= now)
		return 0;
	if (test_clock_set())
		return TEST_CLOCK_POLL_MS;
	return (long) ((due - now + 999) / 1000);
}
