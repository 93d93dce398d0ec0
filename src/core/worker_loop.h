/*
 * worker_loop.h
 *	  What every stocks_stream background worker (and the launcher) does at
 *	  start and on each pass of its loop.
 */
#ifndef STOCKS_STREAM_WORKER_LOOP_H
#define STOCKS_STREAM_WORKER_LOOP_H

#include "core/worker_args.h"
#include "core/worker_status.h"

extern WorkerArgs ss_worker_loop_args;

/* the launcher and the workers */
extern void ss_worker_loop_setup(void);
extern void ss_worker_loop_connect(void);
extern bool ss_worker_loop_launcher_pass(void);
extern void ss_worker_loop_wait(long timeout_ms);

/* the workers the launcher starts */
extern void ss_worker_loop_start(void);
extern WorkerStatus *ss_worker_loop_claim_status(WorkerKind kind, int owner_id,
												 const char *owner_name);
extern bool ss_worker_loop_pass(void);
extern bool ss_worker_loop_serve(void);

#endif
