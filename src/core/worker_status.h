/*
 * worker_status.h
 *	  Shared-memory status slots of the background workers (archive and
 *	  ingest), read by stocks_stream.worker_status and .source_status.
 */
#ifndef STOCKS_STREAM_WORKER_STATUS_H
#define STOCKS_STREAM_WORKER_STATUS_H

#include "datatype/timestamp.h"

typedef struct WorkerStatus WorkerStatus;

typedef enum WorkerKind
{
	WORKER_ARCHIVE = 1,
	WORKER_INGEST = 2
} WorkerKind;

/*
 * The counters of each kind.  worker_status.c names them (the columns of
 * stocks_stream.worker_status_internal()); a slot has room for
 * STATUS_COUNTERS, the length of the bigint[] that 0.1.0's SQL reads.
 */
typedef enum ArchiveCounter
{
	ARCHIVE_MESSAGES,
	ARCHIVE_BYTES,
	ARCHIVE_OBJECTS,
	ARCHIVE_LAG, /* messages in Kafka not archived yet (a gauge) */
	ARCHIVE_COUNTERS
} ArchiveCounter;

typedef enum IngestCounter
{
	INGEST_PRODUCED,
	INGEST_DELIVERY_FAILURES,
	INGEST_API_CALLS,
	INGEST_HTTP_429,
	INGEST_ZERO_QUOTES,
	INGEST_UNCHANGED_QUOTES,
	INGEST_RECONNECTS,
	INGEST_COUNTERS
} IngestCounter;

#define STATUS_COUNTERS 8

extern void ss_worker_status_shmem_request(void);
extern void ss_worker_status_shmem_startup(void);

extern WorkerStatus *ss_worker_status_claim(WorkerKind kind, int owner_id, const char *owner_name,
											int worker_no, uint64 launcher_generation);
extern void ss_worker_status_release(WorkerStatus *slot);
extern uint64 ss_worker_status_launcher_started(void);
extern void ss_worker_status_launcher_exited(uint64 generation);
extern bool ss_worker_status_launcher_is_current(uint64 generation);
extern int ss_worker_status_orphans(uint64 generation, int *pids, int max);
extern void ss_worker_status_set_state(WorkerStatus *slot, const char *state);
extern void ss_worker_status_set_detail(WorkerStatus *slot, const char *detail);
extern void ss_worker_status_add(WorkerStatus *slot, int counter, int64 delta);
extern void ss_worker_status_set_counter(WorkerStatus *slot, int counter, int64 value);
extern void ss_worker_status_add_activity(WorkerStatus *slot, const int64 *deltas);
extern void ss_worker_status_set_error(WorkerStatus *slot, const char *message);

#endif
