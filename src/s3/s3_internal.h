/*
 * s3_internal.h
 *	  One S3 request as libcurl sees it, shared by the S3 client (s3.c) and
 *	  the many-GETs fetcher (s3_fetch.c) and the non-blocking requests
 *	  (s3_async.c).
 */
#ifndef STOCKS_STREAM_S3_INTERNAL_H
#define STOCKS_STREAM_S3_INTERNAL_H

#include "core/http.h"
#include "s3/s3.h"
#include "s3/s3_list_page.h"

/* the most bytes of a response body without a bound of its own (a listing page) */
#define S3_MAX_BODY (64 * 1024 * 1024)

typedef struct RequestBody
{
	const char *data;
	size_t len;
	size_t pos;
} RequestBody;

typedef struct ResponseState
{
	StringInfo body; /* NULL: collect only the start, for errors */
	size_t max_body; /* the most bytes of body taken (0: S3_MAX_BODY) */
	bool too_large;	 /* the body went over it: the transfer was ended */
	bool no_memory;	 /* no memory for the body: the transfer was ended */
	char error_body[400];
	size_t error_len;
	char etag[80];
} ResponseState;

/* One prepared request: what libcurl reads from and writes to. */
typedef struct S3Call
{
	const char *method;
	char *bucket;
	char *key;
	char *url;
	RequestBody body;
	ResponseState st;
	struct curl_slist *headers;
	char curl_error[CURL_ERROR_SIZE];
} S3Call;

extern void ss_s3_prepare_call(S3Call *c, CURL *handle, const char *method, const char *bucket,
							   const char *key, const char *query, const char *data, size_t len,
							   const char *content_type, StringInfo response);
extern S3Result ss_s3_finish_call(S3Call *c, CURL *handle, CURLcode rc);
extern size_t ss_s3_write_body_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
extern char *ss_s3_list_query(const char *prefix, const char *delimiter, const char *start_after,
							  const char *token);
extern void ss_s3_async_reset_connections(void);

#endif
