/*
 * clock.h
 *	  The time the archive worker's flush rules read (a batch's age, how
 *	  long it waits for an unrecorded object): the real time, or in tests
 *	  the time stocks_stream.test_clock holds, which a test moves with
 *	  ALTER SYSTEM and pg_reload_conf() (as timescaledb's src/bgw/timer.h).
 */
#ifndef STOCKS_STREAM_CLOCK_H
#define STOCKS_STREAM_CLOCK_H

#include "datatype/timestamp.h"

extern TimestampTz ss_clock_now(void);
extern long ss_clock_wait_ms(TimestampTz due);

#endif
