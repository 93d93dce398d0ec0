/*
 * archive_uploads.c
 *	  The archive worker's objects on their way to S3.
 *
 * A flush hands a batch over (its buffer, that gzipped, or its Parquet
 * object) and the worker
 * goes back to reading Kafka while libcurl sends it, beside the objects of
 * other partitions (s3_async.c); the worker records each once it has
 * arrived (ss_archive_uploads_arrived): in Postgres, then a commit to Kafka.
 * The worker keeps a partition to one object on its way, so its objects
 * are recorded in offset order, and keeps their number within
 * stocks_stream.archive_requests_in_flight and their bodies within the
 * pipeline's max bytes (ss_archive_uploads_count, ss_archive_uploads_bytes).
 *
 * An object S3 refused stays here without a request (awaiting its retry)
 * until the worker sends it again (ss_archive_uploads_send_again).  An object
 * whose bucket does not exist yet creates the bucket and goes again at
 * once.  Each object's key and gzipped body live in a memory context of
 * its own, reset when it is released.
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/archive_uploads.h"
#include "archive/batch_parquet.h"
#include "s3/s3.h"

typedef struct UploadSlot
{
	ArchiveUpload upload; /* first: an ArchiveUpload * is its slot's address */
	bool active;
	char *body;		   /* what is PUT */
	S3Async *request;  /* NULL: waiting for its retry */
	MemoryContext cxt; /* its key and gzip body */
} UploadSlot;

static UploadSlot slots[ARCHIVE_MAX_UPLOADS];
static int nactive = 0;
static int64 active_bytes = 0;
static char *bucket = NULL;
static ObjectFormat format = OBJECT_FORMAT_NDJSON;

/* by ObjectFormat */
static const char *const content_types[] = {"application/x-ndjson", "application/gzip",
											"application/vnd.apache.parquet"};

void
ss_archive_uploads_configure(const char *bucket_name, ObjectFormat object_format)
{
	if (bucket != NULL)
		pfree(bucket);
	bucket = MemoryContextStrdup(TopMemoryContext, bucket_name);
	format = object_format;
}

static void
send_object(UploadSlot *s)
{
	s->upload.sent_at = GetCurrentTimestamp();
	s->request =
		ss_s3_async_put(bucket, s->upload.key, s->body, s->upload.len, content_types[format]);
}

static UploadSlot *
free_slot(void)
{
	for (int i = 0; i < ARCHIVE_MAX_UPLOADS; i++)
		if (!slots[i].active)
		{
			if (slots[i].cxt == NULL)
				slots[i].cxt = AllocSetContextCreate(TopMemoryContext, "stocks_stream upload",
													 ALLOCSET_SMALL_SIZES);
			return &slots[i];
		}
	elog(ERROR, "stocks_stream: no free upload slot");
	return NULL;
}

/*
 * Take the batch's bytes (the batch starts empty) and send them as the
 * object `key`.
 */
ArchiveUpload *
ss_archive_uploads_start(PartitionBatch *b, const char *key)
{
	UploadSlot *s = free_slot();
	ArchiveUpload *u = &s->upload;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	u->partition = b->partition;
	u->first_offset = b->first_offset;
	u->last_offset = b->last_offset;
	u->count = b->count;
	u->raw_len = b->len;
	u->key = pstrdup(key);
	u->etag[0] = '\0';
	u->handed_at = GetCurrentTimestamp();
	if (b->parquet != NULL)
		s->body = ss_batch_parquet_encode(b, &u->len);
	else if (format == OBJECT_FORMAT_NDJSON_GZ)
	{
		s->body = ss_batch_gzip(b, &u->len);
		pfree(ss_batch_take_data(b));
	}
	else
	{
		u->len = b->len;
		s->body = ss_batch_take_data(b);
	}
	MemoryContextSwitchTo(old);
	s->active = true;
	nactive++;
	active_bytes += u->len;
	send_object(s);
	return u;
}

/* The partition's object on its way, or NULL. */
ArchiveUpload *
ss_archive_uploads_of(int32 partition)
{
	for (int i = 0; i < ARCHIVE_MAX_UPLOADS && nactive > 0; i++)
		if (slots[i].active && slots[i].upload.partition == partition)
			return &slots[i].upload;
	return NULL;
}

/* Is it travelling (not waiting for its retry)? */
bool
ss_archive_uploads_travelling(const ArchiveUpload *u)
{
	return ((const UploadSlot *) u)->request != NULL;
}

/*
 * A finished PUT: true when the object arrived (its ETag kept, for the
 * record); false when S3 refused it (*refusal says why, and it waits for
 * its retry) or it was sent again into a bucket just created.
 */
static bool
conclude(UploadSlot *s, char **refusal)
{
	S3Result res = ss_s3_async_end(s->request, NULL);

	s->request = NULL;
	s->upload.answered_at = GetCurrentTimestamp();
	if (!res.ok && res.http_status == 404 && strstr(res.error, "NoSuchBucket") != NULL)
	{
		res = ss_s3_create_bucket(bucket);
		if (res.ok)
		{
			ereport(LOG, (errmsg("stocks_stream: created bucket \"%s\"", bucket)));
			send_object(s);
			return false;
		}
	}
	if (!res.ok)
	{
		*refusal = pstrdup(res.error);
		return false;
	}
	strlcpy(s->upload.etag, res.etag, sizeof(s->upload.etag));
	return true;
}

/*
 * The objects that have arrived since the last look, into `arrived`
 * (room for ARCHIVE_MAX_UPLOADS); returns how many.  When S3 refused one,
 * *refusal is S3's error (else NULL).
 */
int
ss_archive_uploads_arrived(ArchiveUpload **arrived, char **refusal)
{
	int n = 0;

	*refusal = NULL;
	for (int i = 0; i < ARCHIVE_MAX_UPLOADS && nactive > 0; i++)
	{
		UploadSlot *s = &slots[i];

		if (s->active && s->request != NULL && ss_s3_async_done(s->request) && conclude(s, refusal))
			arrived[n++] = &s->upload;
	}
	return n;
}

/* An object recorded (or given up): its memory goes. */
void
ss_archive_uploads_release(ArchiveUpload *u)
{
	UploadSlot *s = (UploadSlot *) u;

	pfree(s->body);
	MemoryContextReset(s->cxt);
	active_bytes -= u->len;
	s->active = false;
	s->request = NULL;
	nactive--;
}

/* Drop an object unrecorded (its partition went elsewhere): its offsets are read again. */
void
ss_archive_uploads_abandon(ArchiveUpload *u)
{
	UploadSlot *s = (UploadSlot *) u;

	if (s == NULL)
		return;
	if (s->request != NULL)
		(void) ss_s3_async_end(s->request, NULL);
	ss_archive_uploads_release(u);
}

/* Is an object waiting for its retry (S3 refused it)? */
bool
ss_archive_uploads_awaiting_retry(void)
{
	for (int i = 0; i < ARCHIVE_MAX_UPLOADS && nactive > 0; i++)
		if (slots[i].active && slots[i].request == NULL)
			return true;
	return false;
}

/* Send the objects S3 refused again. */
void
ss_archive_uploads_send_again(void)
{
	for (int i = 0; i < ARCHIVE_MAX_UPLOADS && nactive > 0; i++)
		if (slots[i].active && slots[i].request == NULL)
			send_object(&slots[i]);
}

/* Objects handed over and not yet released. */
int
ss_archive_uploads_count(void)
{
	return nactive;
}

/* Their bodies' bytes. */
int64
ss_archive_uploads_bytes(void)
{
	return active_bytes;
}
