/*
 * archive_uploads.h
 *	  The archive worker's objects on their way to S3.
 */
#ifndef STOCKS_STREAM_ARCHIVE_UPLOADS_H
#define STOCKS_STREAM_ARCHIVE_UPLOADS_H

#include "datatype/timestamp.h"

#include "archive/batch.h"
#include "archive/object_key.h"
#include "core/settings.h"

/* at most one object per request the setting allows */
#define ARCHIVE_MAX_UPLOADS SS_ARCHIVE_REQUESTS_MAX

/* An object handed over by a flush, until it is recorded or abandoned. */
typedef struct ArchiveUpload
{
	int32 partition;
	int64 first_offset;
	int64 last_offset;
	int64 count;
	size_t raw_len; /* NDJSON bytes, before any gzip */
	char *key;
	size_t len;	   /* bytes PUT */
	char etag[80]; /* S3's, once it has arrived */
	/* for the latency histograms (core/worker_status.h) */
	TimestampTz handed_at;	 /* the flush handed the batch over */
	TimestampTz sent_at;	 /* its last PUT was sent */
	TimestampTz answered_at; /* S3 answered that PUT */
} ArchiveUpload;

extern void ss_archive_uploads_configure(const char *bucket, ObjectFormat format);
extern ArchiveUpload *ss_archive_uploads_start(PartitionBatch *batch, const char *key);
extern ArchiveUpload *ss_archive_uploads_of(int32 partition);
extern bool ss_archive_uploads_travelling(const ArchiveUpload *upload);
extern int ss_archive_uploads_arrived(ArchiveUpload **arrived, char **refusal);
extern void ss_archive_uploads_release(ArchiveUpload *upload);
extern void ss_archive_uploads_abandon(ArchiveUpload *upload);
extern bool ss_archive_uploads_awaiting_retry(void);
extern void ss_archive_uploads_send_again(void);
extern int ss_archive_uploads_count(void);
extern int64 ss_archive_uploads_bytes(void);

#endif
