/*
 * worker_args.h
 *	  What the launcher passes to the workers it starts (in bgw_extra).
 */
#ifndef STOCKS_STREAM_WORKER_ARGS_H
#define STOCKS_STREAM_WORKER_ARGS_H

typedef struct WorkerArgs
{
	int owner_id; /* pipeline_id or source_id */
	int worker_no;
	int generation;				/* of the pipeline/source when started */
	uint64 launcher_generation; /* of the launcher that started it */
} WorkerArgs;

#endif
