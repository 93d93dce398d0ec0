/*
 * bronze_parquet.h
 *	  The rows of an archived Parquet object as the lines the loader reads.
 */
#ifndef STOCKS_STREAM_BRONZE_PARQUET_H
#define STOCKS_STREAM_BRONZE_PARQUET_H

#include "lib/stringinfo.h"

extern int64 ss_bronze_parquet_lines(StringInfo in, StringInfo out, const char *key,
									 int32 partition, int64 first_offset, int64 last_offset);

#endif
