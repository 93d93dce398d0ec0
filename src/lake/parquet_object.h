/*
 * parquet_object.h
 *	  Parquet archive objects, written and read through lake/parquet_ffi
 *	  (the Apache Arrow project's Rust crate parquet): the one header the
 *	  rest of the extension includes for Parquet.
 */
#ifndef STOCKS_STREAM_PARQUET_OBJECT_H
#define STOCKS_STREAM_PARQUET_OBJECT_H

/* one Kafka message of an object; pointers borrowed */
typedef struct ParquetMessage
{
	const char *topic; /* read only: a writer's topic is its own */
	size_t topic_len;
	int32 partition; /* read only */
	int64 offset;
	int64 timestamp_ms; /* -1: none */
	const char *key;	/* NULL: none */
	size_t key_len;
	const char *headers; /* a JSON object; NULL: none */
	size_t headers_len;
	const char *value;
	size_t value_len;
} ParquetMessage;

typedef struct ParquetWriter ParquetWriter;
typedef struct ParquetReader ParquetReader;

extern bool ss_parquet_object_supported(void);

extern ParquetWriter *ss_parquet_object_writer(const char *topic, int32 partition);
extern void ss_parquet_object_add(ParquetWriter *w, const ParquetMessage *m);
extern char *ss_parquet_object_finish(ParquetWriter *w, size_t *len);
extern void ss_parquet_object_free_writer(ParquetWriter *w);

extern ParquetReader *ss_parquet_object_open(const char *data, size_t len, const char *key);
extern int64 ss_parquet_object_rows(ParquetReader *r);
extern bool ss_parquet_object_next(ParquetReader *r, ParquetMessage *m);

#endif
