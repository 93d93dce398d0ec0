/*
 * ss_parquet_ffi.h
 *	  The C ABI of lake/parquet_ffi: write and read the Parquet objects of
 *	  archive pipelines with the Apache Arrow project's Rust crate parquet.
 *
 * Every function catches Rust panics: on failure it returns -1 (or NULL)
 * and writes a NUL-terminated message of at most errlen bytes to err.
 * Nothing here aborts the process.  Memory is Rust's (malloc), not a
 * PostgreSQL memory context: free each handle with its free function.
 */
#ifndef SS_PARQUET_FFI_H
#define SS_PARQUET_FFI_H

#include <stddef.h>
#include <stdint.h>

/* one Kafka message; pointers are borrowed (see each function) */
typedef struct SsPqRow
{
	const uint8_t *topic;
	size_t topic_len;
	int32_t partition;
	int64_t offset;
	int64_t timestamp_ms;
	int32_t has_timestamp;
	const uint8_t *key;
	size_t key_len;
	int32_t has_key;
	const uint8_t *headers; /* a JSON text */
	size_t headers_len;
	int32_t has_headers;
	const uint8_t *value; /* the raw message value, typed JSON */
	size_t value_len;
} SsPqRow;

typedef struct SsPqWriter SsPqWriter;
typedef struct SsPqReader SsPqReader;

/* a writer buffering the messages of one topic partition; NULL on error */
extern SsPqWriter *ss_pq_writer_new(const uint8_t *topic, size_t topic_len, int32_t partition,
									char *err, size_t errlen);
/* copy one message in (row's topic and partition are ignored); 0 or -1 */
extern int32_t ss_pq_writer_add(SsPqWriter *w, const SsPqRow *row, char *err, size_t errlen);
/* encode what it holds as one object: one row group, ZSTD; 0 or -1 */
extern int32_t ss_pq_writer_finish(SsPqWriter *w, uint8_t **data, size_t *len, char *err,
								   size_t errlen);
extern void ss_pq_buffer_free(uint8_t *data, size_t len);
extern void ss_pq_writer_free(SsPqWriter *w);

/* a reader over a copy of an object in memory; NULL on error (not Parquet,
 * or not an archive object's columns) */
extern SsPqReader *ss_pq_reader_open(const uint8_t *data, size_t len, char *err, size_t errlen);
/* the rows its footer counts; -1 on error */
extern int64_t ss_pq_reader_rows(const SsPqReader *r);
/* the next row into *row (valid until the next call or the free): 1, 0 at
 * the end, -1 on error; one row group is decoded at a time */
extern int32_t ss_pq_reader_next(SsPqReader *r, SsPqRow *row, char *err, size_t errlen);
extern void ss_pq_reader_free(SsPqReader *r);

#endif
