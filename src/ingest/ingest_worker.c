/*
 * ingest_worker.c
 *	  The ingest worker: runs one source (simulator, finnhub_quotes or
 *	  finnhub_trades) and produces what it yields to Kafka.
 *
 * This file owns the worker's life cycle (signals, settings reload, the
 * status slot, the producer); each source kind lives in a file of its own
 * (simulator_source.c, finnhub_quotes.c, finnhub_trades.c) and calls back
 * in through ss_ingest_worker_wait() and ss_ingest_worker_send().  Producing never buffers without
 * bound: when librdkafka's queue is full, ss_ingest_worker_send() waits, which stops
 * the source from fetching or generating more.
 */
#include "postgres.h"

#include <malloc.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "core/pipeline_store.h"
#include "core/secrets.h"
#include "core/settings.h"
#include "core/worker_args.h"
#include "core/worker_loop.h"
#include "core/worker_status.h"
#include "ingest/ingest_worker.h"
#include "ingest/producer.h"

/*
 * Messages queued between servings of delivery reports: acknowledged
 * messages are freed while still in cache (bench/README.md).
 */
#define DELIVERY_REPORTS_EVERY 1000

static WorkerStatus *status = NULL;
static int64 pending[STATUS_COUNTERS];

/* Move producer and source counters to shared memory. */
static void
publish_counts(void)
{
	ProducerCounts pc;
	bool any = false;

	ss_producer_take_counts(&pc);
	pending[INGEST_PRODUCED] += pc.delivered;
	pending[INGEST_DELIVERY_FAILURES] += pc.failed;
	if (pc.last_error[0] != '\0')
		ss_worker_status_set_error(status, pc.last_error);
	for (int i = 0; i < STATUS_COUNTERS; i++)
		any |= (pending[i] != 0);
	if (!any)
		return;
	if (pc.delivered > 0)
		ss_worker_status_add_activity(status, pending);
	else
		for (int i = 0; i < STATUS_COUNTERS; i++)
			if (pending[i] != 0)
				ss_worker_status_add(status, i, pending[i]);
	memset(pending, 0, sizeof(pending));
}

void
ss_ingest_worker_count(int counter, int64 delta)
{
	pending[counter] += delta;
}

void
ss_ingest_worker_set_state(const char *state)
{
	ss_worker_status_set_state(status, state);
}

void
ss_ingest_worker_error(const char *message)
{
	ss_worker_status_set_error(status, message);
}

/*
 * The Finnhub API key, or NULL (with the state and error set) when none is
 * configured.
 */
char *
ss_ingest_worker_finnhub_key(void)
{
	const char *key = ss_secrets_get("finnhub_api_key");

	if (key[0] != '\0')
		return pstrdup(key);
	ss_ingest_worker_set_state("no API key");
	ss_ingest_worker_error(
		"no Finnhub API key: add finnhub_api_key to the file stocks_stream.secrets_file "
		"names");
	return NULL;
}

/* Serve delivery reports, and publish the counts. */
static void
serve_producer(void)
{
	ss_producer_poll(0);
	publish_counts();
}

/*
 * End a source's pass: sleep up to timeout_ms (0: just check), serving
 * signals, settings reloads and Kafka delivery reports, and begin the next
 * pass (what the source allocated in this one is freed); it may return
 * early.  While messages are in flight it waits for their delivery reports
 * (at most 100 ms at a time, so signals are still served promptly) rather
 * than on the latch: acknowledgements are counted as they arrive, not a
 * sleep later.
 */
void
ss_ingest_worker_wait(long timeout_ms)
{
	if (timeout_ms > 0 && ss_producer_in_flight() > 0)
		ss_producer_poll((int) Min(timeout_ms, 100));
	else if (timeout_ms > 0)
		ss_worker_loop_wait(timeout_ms);
	ResetLatch(MyLatch);
	ss_worker_loop_pass();
	serve_producer();
}

/*
 * Queue one message, waiting while Kafka cannot take more.  timestamp_ms is
 * its Kafka timestamp (unix milliseconds), 0 for the time of sending.
 */
void
ss_ingest_worker_send(const char *key, const char *payload, size_t len, int64 timestamp_ms)
{
	static uint32 sent = 0;
	bool waited = false;

	if (++sent % DELIVERY_REPORTS_EVERY == 0)
		ss_producer_poll(0);
	while (!ss_producer_send(key, payload, len, timestamp_ms))
	{
		if (!waited)
			ss_ingest_worker_set_state("waiting for Kafka");
		waited = true;
		ss_producer_poll(100);
		ss_worker_loop_serve();
		serve_producer();
	}
	if (waited)
		ss_ingest_worker_set_state("running");
}

void
ss_ingest_worker_main(Datum main_arg)
{
	WorkerArgs args;
	SourceConfig *src;
	MemoryContext cxt;

	ss_worker_loop_start();
	args = ss_worker_loop_args;

	/*
	 * librdkafka frees messages in bulk; without glibc's fast bins the freed
	 * chunks coalesce and are reused in order (bench/README.md).
	 */
	mallopt(M_MXFAST, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "stocks_stream ingest", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	src = ss_pipeline_store_load_source(args.owner_id);
	if (src == NULL || !src->running || src->generation != args.generation)
	{
		ereport(LOG, (errmsg("stocks_stream: source %d changed before its worker started; exiting",
							 args.owner_id)));
		proc_exit(0);
	}
	status = ss_worker_loop_claim_status(WORKER_INGEST, src->source_id, src->name);
	{
		StringInfoData detail;

		initStringInfo(&detail);
		appendStringInfo(&detail, "%s -> %s:", src->kind, src->topic);
		for (int i = 0; i < src->nsymbols; i++)
			appendStringInfo(&detail, "%s%s", i ? "," : " ", src->symbols[i]);
		ss_worker_status_set_detail(status, detail.data);
	}
	pgstat_report_appname(psprintf("stocks_stream ingest %s", src->name));
	ss_producer_open(src->name, src->topic);
	ereport(LOG, (errmsg("stocks_stream source \"%s\" (%s) started", src->name, src->kind)));

	if (strcmp(src->kind, "simulator") == 0)
		ss_simulator_source_run(src);
	else if (strcmp(src->kind, "finnhub_quotes") == 0)
		ss_finnhub_quotes_run(src);
	else if (strcmp(src->kind, "finnhub_trades") == 0)
		ss_finnhub_trades_run(src);
	else
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream: unknown source kind \"%s\"", src->kind)));
	proc_exit(0);
}
