/*
 * simulator_source.c
 *	  The simulator source: paces the market simulator (simulator.c) and
 *	  produces what it generates.
 *
 * Messages are generated at the source's rate (0: as fast as Kafka takes
 * them), in rounds of at most SIM_MAX_BATCH, up to max_messages when that
 * is set; after the last one the worker waits for the deliveries and then
 * stays idle in state "done".
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "ingest_worker.h"
#include "producer.h"
#include "simulator.h"

#define SIM_MAX_BATCH 5000
#define CLOCK_EVERY	  64 /* messages stamped with one reading of the clock */

static int64
now_ms(void)
{
	return (int64) (GetCurrentTimestamp() / 1000) +
		   (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * 86400000;
}

/* How many messages are due now, given how many were generated since `started`. */
static int64
messages_due(const SourceConfig *src, TimestampTz started, int64 generated)
{
	int64 due = SIM_MAX_BATCH;

	if (src->rate > 0)
	{
		long secs;
		int usecs;

		TimestampDifference(started, GetCurrentTimestamp(), &secs, &usecs);
		due = (int64) ((secs + usecs / 1e6) * src->rate) + 1 - generated;
		due = Min(due, SIM_MAX_BATCH);
	}
	if (src->max_messages > 0)
		due = Min(due, src->max_messages - generated);
	return due;
}

/* Generate and send `due` messages. */
static void
produce_round(Simulator *sim, StringInfo buf, int64 due)
{
	int64 now = 0;

	for (int64 i = 0; i < due; i++)
	{
		const char *symbol;

		/* a clock reading per message shows at full speed (bench/README.md) */
		if (i % CLOCK_EVERY == 0)
			now = now_ms();
		resetStringInfo(buf);
		symbol = sim_next(sim, now, buf);
		/* stamped with the time written into it (saves a clock reading) */
		ingest_send(symbol, buf->data, buf->len, now);
	}
}

void
ss_run_simulator(const SourceConfig *src)
{
	Simulator *sim = sim_create(src->symbols, src->nsymbols, src->seed, src->quote_every);
	StringInfoData buf;
	TimestampTz started = GetCurrentTimestamp();
	int64 generated = 0;

	initStringInfo(&buf);
	ingest_set_state("running");
	for (;;)
	{
		int64 due = messages_due(src, started, generated);
		long sleep_ms = 0;

		produce_round(sim, &buf, due);
		generated += Max(due, 0);
		if (src->max_messages > 0 && generated >= src->max_messages)
		{
			ingest_set_state(ss_producer_in_flight() > 0 ? "flushing" : "done");
			sleep_ms = 100;
		}
		else if (src->rate > 0 && due <= 0)
			sleep_ms = Max(1, (long) (1000.0 / src->rate));
		ingest_wait(sleep_ms);
	}
}
