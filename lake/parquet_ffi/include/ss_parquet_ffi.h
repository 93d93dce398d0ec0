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
/* encode what it holds as one object: one row group, ZSTD; 0 or -1; the
 * writer gives its messages up as they are encoded (free it after) */
extern int32_t ss_pq_writer_finish(SsPqWriter *w, uint8_t **data, size_t *len, char *err,
								   size_t errlen);
extern void ss_pq_buffer_free(uint8_t *data, size_t len);
extern void ss_pq_writer_free(SsPqWriter *w);

/* a reader over a copy of an object in memory; NULL on error (not Parquet,
 * not an archive object's columns, or a page that would inflate to more
 * than max_page bytes) */
extern SsPqReader *ss_pq_reader_open(const uint8_t *data, size_t len, size_t max_page, char *err,
									 size_t errlen);
/* the rows its footer counts; -1 on error */
extern int64_t ss_pq_reader_rows(const SsPqReader *r);
/* the next row into *row (valid until the next call or the free): 1, 0 at
 * the end, -1 on error; one row group is decoded at a time */
extern int32_t ss_pq_reader_next(SsPqReader *r, SsPqRow *row, char *err, size_t errlen);
extern void ss_pq_reader_free(SsPqReader *r);

/*
 * Silver rows (tiering, src/lake/silver_object.c): typed objects of the
 * quotes or trades table, one cell per column in the table's order.
 */
#define SS_PQ_TRADES 1
#define SS_PQ_QUOTES 2

/* one string of a list cell */
typedef struct SsPqStr
{
	const uint8_t *ptr;
	size_t len;
	int32_t is_null;
} SsPqStr;

/* one value: i64 for INT32, INT64 and timestamps (microseconds since 1970,
 * UTC), f64 for doubles, ptr/len for strings, items/nitems for lists */
typedef struct SsPqCell
{
	int32_t is_null;
	int64_t i64;
	double f64;
	const uint8_t *ptr;
	size_t len;
	const SsPqStr *items;
	size_t nitems;
} SsPqCell;

typedef struct SsPqSilverWriter SsPqSilverWriter;
typedef struct SsPqSilverReader SsPqSilverReader;

/* a writer of one object whose row groups hold group_rows rows (ZSTD) */
extern SsPqSilverWriter *ss_pq_silver_writer_new(int32_t table, size_t group_rows, char *err,
												 size_t errlen);
/* copy one row in; a full row group is encoded at once; 0 or -1 */
extern int32_t ss_pq_silver_writer_add(SsPqSilverWriter *w, const SsPqCell *cells, size_t ncells,
									   char *err, size_t errlen);
/* bytes of the object so far (its encoded row groups) */
extern int64_t ss_pq_silver_writer_bytes(const SsPqSilverWriter *w);
/* the last row group and the footer: the object, freed with
 * ss_pq_buffer_free; the writer takes no more rows; 0 or -1 */
extern int32_t ss_pq_silver_writer_finish(SsPqSilverWriter *w, uint8_t **data, size_t *len,
										  char *err, size_t errlen);
extern void ss_pq_silver_writer_free(SsPqSilverWriter *w);

/* a reader over a copy of an object; NULL unless it has the table's columns
 * and no page that would inflate to more than max_page bytes */
extern SsPqSilverReader *ss_pq_silver_reader_open(int32_t table, const uint8_t *data, size_t len,
												  size_t max_page, char *err, size_t errlen);
extern int64_t ss_pq_silver_reader_rows(const SsPqSilverReader *r);
/* the next row into cells (valid until the next call or the free): 1, 0
 * at the end, -1 on error; one row group decoded at a time */
extern int32_t ss_pq_silver_reader_next(SsPqSilverReader *r, SsPqCell *cells, size_t ncells,
										char *err, size_t errlen);
extern void ss_pq_silver_reader_free(SsPqSilverReader *r);

#endif
