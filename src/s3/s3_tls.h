/*
 * s3_tls.h
 *	  Certificate verification of https:// S3 endpoints, and what a failed
 *	  check tells the operator (s3_tls.c).
 */
#ifndef STOCKS_STREAM_S3_TLS_H
#define STOCKS_STREAM_S3_TLS_H

#include <curl/curl.h>

extern void ss_s3_tls_set_options(CURL *handle);
extern void ss_s3_tls_explain(CURL *handle, CURLcode rc, char *buf, size_t size);

#endif
