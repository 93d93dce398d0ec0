/*
 * silver_object.h
 *	  Silver rows (stocks_stream.quotes and trades) as typed Parquet objects,
 *	  written and read through lake/parquet_ffi; the row checksum tiering
 *	  compares Postgres and the lake with.
 */
#ifndef STOCKS_STREAM_SILVER_OBJECT_H
#define STOCKS_STREAM_SILVER_OBJECT_H

#include "access/htup.h"
#include "access/tupdesc.h"

typedef enum SilverTable
{
	SILVER_TRADES = 1,
	SILVER_QUOTES = 2
} SilverTable;

typedef struct SilverRow SilverRow;
typedef struct SilverWriter SilverWriter;
typedef struct SilverReader SilverReader;

extern SilverTable ss_silver_object_table(const char *name);
extern const char *ss_silver_object_time_column(SilverTable t);
extern void ss_silver_object_check_desc(SilverTable t, TupleDesc desc);

extern SilverRow *ss_silver_object_row(SilverTable t);
extern void ss_silver_object_row_from_tuple(SilverRow *row, TupleDesc desc, HeapTuple tuple);
extern const char *ss_silver_object_row_symbol(const SilverRow *row, size_t *len);
extern uint64 ss_silver_object_row_hash(const SilverRow *row);

extern SilverWriter *ss_silver_object_writer(SilverTable t, int group_rows);
extern void ss_silver_object_add(SilverWriter *w, const SilverRow *row);
extern int64 ss_silver_object_bytes(const SilverWriter *w);
extern const char *ss_silver_object_finish(SilverWriter *w, size_t *len);
extern void ss_silver_object_free_writer(SilverWriter *w);

extern SilverReader *ss_silver_object_open(SilverTable t, const char *data, size_t len,
										   const char *key);
extern int64 ss_silver_object_rows(const SilverReader *r);
extern bool ss_silver_object_next(SilverReader *r, SilverRow *row);

#endif
