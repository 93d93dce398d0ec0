/*
 * batch.h
 *	  The in-memory batch of one Kafka partition and the archive object
 *	  built from it.
 */
#ifndef STOCKS_STREAM_BATCH_H
#define STOCKS_STREAM_BATCH_H

#include "datatype/timestamp.h"

struct ArchiveProbe;
struct ParquetWriter;

typedef struct PartitionBatch
{
	int32 partition;
	bool assigned;
	int64 next_offset;			/* next offset expected; -1 when unknown */
	int64 recorded_offset;		/* next offset after the last object recorded; -1: none yet */
	bool probe_unrecorded;		/* look for an unrecorded object where the next batch starts */
	struct ArchiveProbe *probe; /* that look, until answered (archive_probe.c); NULL: none */
	int64 end_at;				/* end the batch at this offset (an unrecorded object's); -1: no */
	bool held;					/* not archived until an operator resets it (archive_gaps.c) */
	const char *gap_reason;		/* offsets to skip once what precedes is recorded; NULL: none */
	int64 gap_from;				/* ... the first of them */
	int64 gap_to;				/* ... the last of them */
	char gap_detail[160];		/* ... what the worker saw */
	int64 first_offset;
	int64 last_offset;
	int64 first_timestamp_ms;
	int64 count;
	char *data;					   /* NDJSON, one message per line */
	struct ParquetWriter *parquet; /* or its messages as Parquet rows (batch_parquet.c) */
	size_t len;					   /* bytes held, either way */
	size_t cap;
	TimestampTz opened_at; /* when the first message arrived (core/clock.h) */
} PartitionBatch;

extern void ss_batch_init_context(void);
extern void ss_batch_append(PartitionBatch *batch, int64 offset, int64 timestamp_ms,
							const char *value, size_t len);
extern void ss_batch_clear(PartitionBatch *batch);
extern char *ss_batch_take_data(PartitionBatch *batch);
extern TimestampTz ss_batch_due_by_age(const PartitionBatch *batch, int max_age_ms);
extern char *ss_batch_gzip(const PartitionBatch *batch, size_t *out_len);
extern void ss_batch_note_message(PartitionBatch *batch, int64 offset, int64 timestamp_ms,
								  size_t bytes);

#endif
