/*
 * clock.h
 *	  The time the archive worker's flush rules read (a batch's age, how
 *	  long it waits for an unrecorded object): the real time, or in tests
 *	  the time stocks_stream.test_clock holds, which a test moves with
 *	  ALTER SYSTEM and pg_reload_conf() (as timescaledb's src/bgw/timer.h).
 *	  And Kafka's and Finnhub's times, Unix milliseconds, as PostgreSQL's.
 */
#ifndef STOCKS_STREAM_CLOCK_H
#define STOCKS_STREAM_CLOCK_H

#include "datatype/timestamp.h"

/* milliseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch */
#define SS_CLOCK_UNIX_EPOCH_MS                                                                     \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * INT64CONST(1000))

extern TimestampTz ss_clock_now(void);
extern long ss_clock_wait_ms(TimestampTz due);

/* Unix milliseconds (a Kafka timestamp, an event time) as a timestamptz */
static inline TimestampTz
ss_clock_from_unix_ms(int64 ms)
{
	return (ms - SS_CLOCK_UNIX_EPOCH_MS) * INT64CONST(1000);
}

/* a timestamptz as Unix milliseconds */
static inline int64
ss_clock_to_unix_ms(TimestampTz t)
{
	return t / 1000 + SS_CLOCK_UNIX_EPOCH_MS;
}

#endif
