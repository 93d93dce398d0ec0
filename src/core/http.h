/*
 * http.h
 *	  The libcurl setup shared by the S3 client and the Finnhub quotes
 *	  source.
 */
#ifndef STOCKS_STREAM_HTTP_H
#define STOCKS_STREAM_HTTP_H

#include <curl/curl.h>

#include "lib/stringinfo.h"

#define HTTP_CONNECT_TIMEOUT_MS 5000L

extern void ss_http_init(void);
extern void ss_http_ready_handle(CURL **handle);
extern void ss_http_set_defaults(CURL *handle, char *error_buffer, long timeout_ms);
extern bool ss_http_append(StringInfo buf, const char *data, size_t n, size_t max, bool *too_large);

#endif
