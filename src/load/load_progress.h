/*
 * load_progress.h
 *	  NOTICEs that tell a person watching a long load how far it has got.
 */
#ifndef STOCKS_STREAM_LOAD_PROGRESS_H
#define STOCKS_STREAM_LOAD_PROGRESS_H

#include "datatype/timestamp.h"

#include "load/bronze_loader.h"

typedef struct LoadProgress
{
	const char *caller; /* the SQL function, e.g. "load_bronze_prefix" */
	const char *doing;	/* "loaded", "read" */
	bool listing;		/* total is what a listing found so far */
	int64 total;		/* objects taken on */
	int64 done;
	TimestampTz started;
	TimestampTz reported;
} LoadProgress;

extern void ss_load_progress_begin(LoadProgress *p, const char *caller, const char *doing,
								   bool listing);
extern void ss_load_progress_step(LoadProgress *p, const LoadCounts *counts, const char *key);

#endif
