/*
 * ingest_worker.h
 *	  The ingest worker and the services it offers to its sources.
 */
#ifndef STOCKS_STREAM_INGEST_WORKER_H
#define STOCKS_STREAM_INGEST_WORKER_H

#include "postgres.h"

#include "core/pipeline_store.h"

extern PGDLLEXPORT void ss_ingest_worker_main(Datum main_arg);

/* for the sources (simulator_source.c, finnhub_quotes.c, finnhub_trades.c) */
extern void ss_ingest_worker_wait(long timeout_ms);
extern void ss_ingest_worker_send(const char *key, const char *payload, size_t len,
								  int64 timestamp_ms);
extern void ss_ingest_worker_count(int counter, int64 delta);
extern void ss_ingest_worker_set_state(const char *state);
extern void ss_ingest_worker_error(const char *message);
extern char *ss_ingest_worker_finnhub_key(void);

extern void ss_simulator_source_run(const SourceConfig *source);
extern void ss_finnhub_quotes_run(const SourceConfig *source);
extern void ss_finnhub_trades_run(const SourceConfig *source);

#endif
