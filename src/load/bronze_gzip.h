/*
 * bronze_gzip.h
 *	  Inflating an archived object, within a bound.
 */
#ifndef STOCKS_STREAM_BRONZE_GZIP_H
#define STOCKS_STREAM_BRONZE_GZIP_H

#include "lib/stringinfo.h"

extern bool ss_bronze_gzip_inflate(const char *in, size_t in_len, StringInfo out, size_t max_out,
								   char *reason, size_t reason_len);

#endif
