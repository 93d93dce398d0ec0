/*
 * archive_uploads.h
 *	  The archive worker's objects on their way to S3.
 */
#ifndef STOCKS_STREAM_ARCHIVE_UPLOADS_H
#define STOCKS_STREAM_ARCHIVE_UPLOADS_H

#include "archive/batch.h"
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
} ArchiveUpload;

extern void archive_uploads_configure(const char *bucket, bool gzip);
extern ArchiveUpload *archive_upload_start(PartitionBatch *batch, const char *key);
extern ArchiveUpload *archive_upload_of(int32 partition);
extern bool archive_upload_travelling(const ArchiveUpload *upload);
extern int archive_uploads_arrived(ArchiveUpload **arrived, char **refusal);
extern void archive_upload_release(ArchiveUpload *upload);
extern void archive_upload_abandon(ArchiveUpload *upload);
extern bool archive_uploads_awaiting_retry(void);
extern void archive_uploads_send_again(void);
extern int archive_uploads_count(void);
extern int64 archive_uploads_bytes(void);

#endif
