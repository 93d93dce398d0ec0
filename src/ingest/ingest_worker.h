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
extern void ingest_wait(long timeout_ms);
extern void ingest_send(const char *key, const char *payload, size_t len, int64 timestamp_ms);
extern void ingest_count(int counter, int64 delta);
extern void ingest_set_state(const char *state);
extern void ingest_error(const char *message);
extern char *ingest_finnhub_key(void);

extern void ss_run_simulator(const SourceConfig *source);
extern void ss_run_finnhub_quotes(const SourceConfig *source);
extern void ss_run_finnhub_trades(const SourceConfig *source);

#endif
