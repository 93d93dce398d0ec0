/*
 * s3.h
 *	  A small S3 client over libcurl (SigV4 signing by libcurl itself).
 */
#ifndef STOCKS_STREAM_S3_H
#define STOCKS_STREAM_S3_H

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

/* Outcome of one request; http_status is 0 when no HTTP answer came back. */
typedef struct S3Result
{
	bool ok;
	long http_status;
	char etag[80];
	char error[512];
} S3Result;

/* A key of a listing with what the listing says of it. */
typedef struct S3ListEntry
{
	char *key;
	char etag[80];
	int64 size;
} S3ListEntry;

/* Many GETs in flight, objects handed back in the order asked (s3_fetch.c). */
typedef struct S3Fetch S3Fetch;

extern S3Result ss_s3_create_bucket(const char *bucket);
extern S3Result ss_s3_get_object(const char *bucket, const char *key, StringInfo body);
extern S3Result ss_s3_list_objects(const char *bucket, const char *prefix, List **keys);
extern S3Result ss_s3_list(const char *bucket, const char *prefix, const char *delimiter,
						   const char *start_after, List **keys, List **folders);
extern S3Result ss_s3_list_entries(const char *bucket, const char *prefix, const char *delimiter,
								   const char *start_after, int max_keys, List **entries,
								   List **folders);
extern void ss_s3_reset_connection(void);

extern S3Fetch *ss_s3_fetch_begin(int max_in_flight, Size max_bytes);
extern void ss_s3_fetch_add(S3Fetch *fetch, const char *bucket, const char *key);
extern S3Result ss_s3_fetch_next(S3Fetch *fetch, StringInfo body);
extern void ss_s3_fetch_end(S3Fetch *fetch);

/* keys in one page of a listing (ListObjectsV2's max-keys) */
#define S3_LIST_PAGE_KEYS 1000

/*
 * Non-blocking requests, many side by side (s3_async.c): a PUT's `data`
 * must stay put until ss_s3_async_end.
 */
typedef struct S3Async S3Async;
extern S3Async *ss_s3_async_put(const char *bucket, const char *key, const char *data, size_t len,
								const char *content_type);
extern S3Async *ss_s3_async_list(const char *bucket, const char *prefix);
extern void ss_s3_async_step(int wait_ms);
extern bool ss_s3_async_done(const S3Async *request);
extern int ss_s3_async_in_flight(void);
extern S3Result ss_s3_async_end(S3Async *request, List **keys);

#endif
