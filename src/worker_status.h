/*
 * worker_status.h
 *	  Shared-memory status of the archive workers, read by
 *	  stocks_stream.worker_status.
 */
#ifndef STOCKS_STREAM_WORKER_STATUS_H
#define STOCKS_STREAM_WORKER_STATUS_H

#include "datatype/timestamp.h"

typedef struct WorkerStatus WorkerStatus;

extern void ss_status_shmem_request(void);
extern void ss_status_shmem_startup(void);

extern WorkerStatus *ss_status_claim(int pipeline_id, const char *pipeline,
									 int worker_no);
extern void ss_status_release(WorkerStatus *slot);
extern void ss_status_set_state(WorkerStatus *slot, const char *state);
extern void ss_status_set_partitions(WorkerStatus *slot, const char *partitions);
extern void ss_status_count_flush(WorkerStatus *slot, uint64 messages,
								  uint64 bytes);
extern void ss_status_set_error(WorkerStatus *slot, const char *message);

#endif
