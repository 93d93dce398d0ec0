/*
 * simulator_source.c
 *	  The simulator source: paces the market simulator (simulator.c) and
 *	  produces what it generates.
 *
 * Messages are generated at the source's rate (0: as fast as Kafka takes
 * them), in rounds of at most SIM_MAX_BATCH, up to max_messages when that
 * is set; after the last one the worker waits for the deliveries and then
 * stays idle in state "done".  A round is generated first and then sent
 * grouped by symbol, each symbol's messages in the order generated (so each
 * partition's too): librdkafka walks every partition's queued messages to
 * batch and to acknowledge them, and a partition's messages lying together
 * in memory cost it half the CPU of symbols sent in turns (bench/README.md).
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "core/clock.h"
#include "ingest/ingest_worker.h"
#include "ingest/producer.h"
#include "ingest/simulator.h"

#define SIM_MAX_BATCH 5000
#define CLOCK_EVERY	  64 /* messages stamped with one reading of the clock */

static int64
now_ms(void)
{
	return ss_clock_to_unix_ms(GetCurrentTimestamp());
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

/* One generated message of a round; its payload is in Round.payloads. */
typedef struct RoundMessage
{
	const char *symbol;
	int64 timestamp_ms;
	int offset;
	int len;
} RoundMessage;

typedef struct Round
{
	StringInfoData payloads;
	RoundMessage messages[SIM_MAX_BATCH];
} Round;

/* Generate `due` messages into the round. */
static void
generate_round(Simulator *sim, Round *round, int64 due)
{
	int64 now = 0;

	resetStringInfo(&round->payloads);
	for (int64 i = 0; i < due; i++)
	{
		RoundMessage *m = &round->messages[i];

		/* a clock reading per message shows at full speed (bench/README.md) */
		if (i % CLOCK_EVERY == 0)
			now = now_ms();
		m->offset = round->payloads.len;
		m->symbol = ss_simulator_next(sim, now, &round->payloads);
		m->len = round->payloads.len - m->offset;
		/* stamped with the time written into it (saves a clock reading) */
		m->timestamp_ms = now;
	}
}

/*
 * Send the round's `due` messages grouped by symbol.  Symbols take turns
 * (simulator.c), so a symbol's messages are every nsymbols-th from its
 * first.  Each message keeps its own symbol: were the turns ever otherwise,
 * only the grouping would suffer, not the keys.
 */
static void
send_round(const Round *round, int nsymbols, int64 due)
{
	for (int64 first = 0; first < Min(nsymbols, due); first++)
		for (int64 i = first; i < due; i += nsymbols)
		{
			const RoundMessage *m = &round->messages[i];

			ss_ingest_worker_send(m->symbol, round->payloads.data + m->offset, m->len,
								  m->timestamp_ms);
		}
}

void
ss_simulator_source_run(const SourceConfig *src)
{
	Simulator *sim = ss_simulator_create(src->symbols, src->nsymbols, src->seed, src->quote_every);
	Round *round = palloc(sizeof(Round));
	TimestampTz started = GetCurrentTimestamp();
	int64 generated = 0;

	initStringInfo(&round->payloads);
	ss_ingest_worker_set_state("running");
	for (;;)
	{
		int64 due = messages_due(src, started, generated);
		long sleep_ms = 0;

		generate_round(sim, round, due);
		send_round(round, src->nsymbols, due);
		generated += Max(due, 0);
		if (src->max_messages > 0 && generated >= src->max_messages)
		{
			ss_ingest_worker_set_state(ss_producer_in_flight() > 0 ? "flushing" : "done");
			sleep_ms = 100;
		}
		else if (src->rate > 0 && due <= 0)
			sleep_ms = Max(1, (long) (1000.0 / src->rate));
		ss_ingest_worker_wait(sleep_ms);
	}
}
