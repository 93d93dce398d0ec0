/*
 * batch.c
 *	  Buffers the messages of one partition as NDJSON and turns a batch into
 *	  the bytes of its archive object (its key: object_key.c).
 *
 * Each message value becomes one line, byte for byte, except that a raw
 * CR or LF inside a value becomes a space: in valid JSON those bytes can
 * only be insignificant whitespace, and keeping one message per line is
 * what lets a loader map line N of an object to offset first_offset + N.
 *
 * Batch buffers live in their own memory context and are freed when the
 * batch is cleared, so a worker's memory follows what it holds right now.
 */
#include "postgres.h"

#include <zlib.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/batch.h"
#include "core/clock.h"
#include "lake/parquet_object.h"

#define INITIAL_CAPACITY (64 * 1024)

static MemoryContext batch_context = NULL;

void
ss_batch_init_context(void)
{
	batch_context =
		AllocSetContextCreate(TopMemoryContext, "stocks_stream batches", ALLOCSET_DEFAULT_SIZES);
}

static void
batch_reserve(PartitionBatch *batch, size_t extra)
{
	size_t need = batch->len + extra;
	size_t cap;

	if (need <= batch->cap)
		return;
	cap = Max(batch->cap, INITIAL_CAPACITY);
	while (cap < need)
		cap *= 2;
	if (batch->data == NULL)
		batch->data = MemoryContextAllocHuge(batch_context, cap);
	else
		batch->data = repalloc_huge(batch->data, cap);
	batch->cap = cap;
}

void
ss_batch_append(PartitionBatch *batch, int64 offset, int64 timestamp_ms, const char *value,
				size_t len)
{
	char *dst;

	batch_reserve(batch, len + 1);
	dst = batch->data + batch->len;
	if (len > 0)
	{
		char *p = dst;
		char *end = dst + len;

		memcpy(dst, value, len);
		while ((p = memchr(p, '\n', end - p)) != NULL)
			*p++ = ' ';
		for (p = dst; (p = memchr(p, '\r', end - p)) != NULL;)
			*p++ = ' ';
	}
	dst[len] = '\n';
	ss_batch_note_message(batch, offset, timestamp_ms, len + 1);
}

/* Count a message appended, of `bytes`, into the batch's offsets and size. */
void
ss_batch_note_message(PartitionBatch *batch, int64 offset, int64 timestamp_ms, size_t bytes)
{
	batch->len += bytes;
	if (batch->count == 0)
	{
		batch->first_offset = offset;
		batch->first_timestamp_ms = timestamp_ms;
		batch->opened_at = ss_clock_now();
	}
	batch->last_offset = offset;
	batch->next_offset = offset + 1;
	batch->count++;
}

void
ss_batch_clear(PartitionBatch *batch)
{
	if (batch->data != NULL)
		pfree(batch->data);
	batch->data = NULL;
	ss_parquet_object_free_writer(batch->parquet);
	batch->parquet = NULL;
	batch->len = 0;
	batch->cap = 0;
	batch->count = 0;
	batch->first_offset = -1;
	batch->last_offset = -1;
	batch->opened_at = 0;
	batch->end_at = -1;
}

/*
 * When the batch is due by age.  The age counts from when its first message
 * was produced (its Kafka timestamp), so that Kafka's own delay is part of
 * the max age rather than added to it: a record waits at most max_age_ms
 * from its producer to S3 while the worker keeps up.  It counts from the
 * message's arrival instead when the timestamp is missing, later than the
 * arrival (a producer's clock ahead of ours) or at least max_age_ms old (a
 * backlog being read: every message is old, and counting from production
 * would make each batch a handful of messages).  Either way a batch stays
 * open at least half the age after its first message arrived, which bounds
 * how many objects a worker lagging by almost max_age_ms makes.
 */
TimestampTz
ss_batch_due_by_age(const PartitionBatch *batch, int max_age_ms)
{
	TimestampTz arrived = batch->opened_at;
	TimestampTz produced;

	if (batch->first_timestamp_ms < 0)
		return TimestampTzPlusMilliseconds(arrived, max_age_ms);
	produced = ss_clock_from_unix_ms(batch->first_timestamp_ms);
	if (produced > arrived || arrived - produced >= (TimestampTz) max_age_ms * 1000)
		return TimestampTzPlusMilliseconds(arrived, max_age_ms);
	return Max(TimestampTzPlusMilliseconds(produced, max_age_ms),
			   TimestampTzPlusMilliseconds(arrived, max_age_ms / 2));
}

/* Hand the batch's buffer to the caller (to pfree) and empty the batch. */
char *
ss_batch_take_data(PartitionBatch *batch)
{
	char *data = batch->data;

	batch->data = NULL;
	ss_batch_clear(batch);
	return data;
}

/* Gzip the batch into a palloc'd buffer of the current memory context. */
char *
ss_batch_gzip(const PartitionBatch *batch, size_t *out_len)
{
	z_stream zs = {0};
	size_t bound;
	char *out;
	int rc;

	/* windowBits 15 + 16 selects the gzip wrapper; level 1 favours speed */
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not initialise gzip compression")));
	bound = deflateBound(&zs, batch->len) + 64;
	out = MemoryContextAllocHuge(CurrentMemoryContext, bound);
	zs.next_in = (Bytef *) batch->data;
	zs.avail_in = batch->len;
	zs.next_out = (Bytef *) out;
	zs.avail_out = bound;
	rc = deflate(&zs, Z_FINISH);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	if (rc != Z_STREAM_END)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("stocks_stream: gzip compression of a batch failed (zlib code %d)", rc)));
	return out;
}
