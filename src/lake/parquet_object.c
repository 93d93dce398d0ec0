/*
 * parquet_object.c
 *	  Parquet archive objects through lake/parquet_ffi's C ABI: its error
 *	  codes and messages become ereports, its buffers palloc'd copies, its
 *	  handles freed with the memory context that owns them.
 *
 * The library's memory is Rust's (malloc), outside PostgreSQL's contexts:
 * a writer is freed by its owner (the archive batch), a reader by a reset
 * callback of the memory context it was opened in, so an ERROR while
 * reading leaks nothing.  Every entry of the library catches Rust panics:
 * none crosses into the backend (lake/parquet_ffi/README.md).
 *
 * Built without PARQUET_FFI_PREFIX (Makefile), every function but
 * ss_parquet_object_supported() stops with an ERROR that says so.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "core/settings.h"
#include "lake/parquet_object.h"

#ifdef SS_HAVE_PARQUET
#include "ss_parquet_ffi.h"

#define ERRLEN 512

struct ParquetWriter
{
	SsPqWriter *w;
};

struct ParquetReader
{
	SsPqReader *r;
	const char *key;
	MemoryContextCallback free_cb;
};

static void
library_error(const char *what, const char *key, const char *err)
{
	if (key != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stocks_stream: could not %s Parquet object \"%s\": %s", what, key, err),
				 errhint("It stays in the manifest, marked failed.")));
	ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
					errmsg("stocks_stream: could not %s a Parquet object: %s", what, err)));
}

bool
ss_parquet_object_supported(void)
{
	return true;
}

/* A writer for the messages of one topic partition, freed by its owner. */
ParquetWriter *
ss_parquet_object_writer(const char *topic, int32 partition)
{
	char err[ERRLEN] = "";
	SsPqWriter *w =
		ss_pq_writer_new((const uint8_t *) topic, strlen(topic), partition, err, sizeof(err));
	ParquetWriter *pw;

	if (w == NULL)
		library_error("start", NULL, err);
	pw = MemoryContextAlloc(TopMemoryContext, sizeof(ParquetWriter));
	pw->w = w;
	return pw;
}

void
ss_parquet_object_add(ParquetWriter *w, const ParquetMessage *m)
{
	char err[ERRLEN] = "";
	SsPqRow row = {0};

	row.offset = m->offset;
	row.has_timestamp = m->timestamp_ms >= 0;
	row.timestamp_ms = m->timestamp_ms;
	row.key = (const uint8_t *) m->key;
	row.key_len = m->key_len;
	row.has_key = m->key != NULL;
	row.headers = (const uint8_t *) m->headers;
	row.headers_len = m->headers_len;
	row.has_headers = m->headers != NULL;
	row.value = (const uint8_t *) m->value;
	row.value_len = m->value_len;
	if (ss_pq_writer_add(w->w, &row, err, sizeof(err)) != 0)
		library_error("add a message to", NULL, err);
}

/* The object (one row group, ZSTD), palloc'd in the current memory context. */
char *
ss_parquet_object_finish(ParquetWriter *w, size_t *len)
{
	char err[ERRLEN] = "";
	uint8_t *data = NULL;
	size_t n = 0;
	char *out;

	if (ss_pq_writer_finish(w->w, &data, &n, err, sizeof(err)) != 0)
		library_error("encode", NULL, err);
	out = MemoryContextAllocHuge(CurrentMemoryContext, Max(n, 1));
	memcpy(out, data, n);
	ss_pq_buffer_free(data, n);
	*len = n;
	return out;
}

void
ss_parquet_object_free_writer(ParquetWriter *w)
{
	if (w == NULL)
		return;
	ss_pq_writer_free(w->w);
	pfree(w);
}

static void
free_reader(void *arg)
{
	ParquetReader *r = arg;

	ss_pq_reader_free(r->r);
	r->r = NULL;
}

/*
 * A reader over an object in memory (the library keeps a copy), freed
 * with the current memory context.  ERROR when the object is not Parquet
 * or has not the columns of an archive object.
 */
ParquetReader *
ss_parquet_object_open(const char *data, size_t len, const char *key)
{
	char err[ERRLEN] = "";
	ParquetReader *r = palloc0(sizeof(ParquetReader));

	r->r = ss_pq_reader_open((const uint8_t *) data, len, ss_settings_max_object_bytes(), err,
							 sizeof(err));
	if (r->r == NULL)
		library_error("read", key, err);
	r->key = pstrdup(key);
	r->free_cb.func = free_reader;
	r->free_cb.arg = r;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &r->free_cb);
	return r;
}

int64
ss_parquet_object_rows(ParquetReader *r)
{
	return ss_pq_reader_rows(r->r);
}

/* The next message into *m (valid until the next call); false at the end. */
bool
ss_parquet_object_next(ParquetReader *r, ParquetMessage *m)
{
	char err[ERRLEN] = "";
	SsPqRow row;
	int32 rc = ss_pq_reader_next(r->r, &row, err, sizeof(err));

	if (rc < 0)
		library_error("read", r->key, err);
	if (rc == 0)
		return false;
	m->topic = (const char *) row.topic;
	m->topic_len = row.topic_len;
	m->partition = row.partition;
	m->offset = row.offset;
	m->timestamp_ms = row.has_timestamp ? row.timestamp_ms : -1;
	m->key = row.has_key ? (const char *) row.key : NULL;
	m->key_len = row.key_len;
	m->headers = row.has_headers ? (const char *) row.headers : NULL;
	m->headers_len = row.headers_len;
	m->value = (const char *) row.value;
	m->value_len = row.value_len;
	return true;
}

#else /* !SS_HAVE_PARQUET */

static void
unsupported(void)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					errmsg("stocks_stream: this build has no Parquet support"),
					errhint("Build the extension with PARQUET_FFI_PREFIX (scripts/stack install "
							"does), or use format => 'ndjson'.")));
}

bool
ss_parquet_object_supported(void)
{
	return false;
}

ParquetWriter *
ss_parquet_object_writer(const char *topic, int32 partition)
{
	unsupported();
	return NULL;
}

void
ss_parquet_object_add(ParquetWriter *w, const ParquetMessage *m)
{
	unsupported();
}

char *
ss_parquet_object_finish(ParquetWriter *w, size_t *len)
{
	unsupported();
	return NULL;
}

void
ss_parquet_object_free_writer(ParquetWriter *w)
{
}

ParquetReader *
ss_parquet_object_open(const char *data, size_t len, const char *key)
{
	unsupported();
	return NULL;
}

int64
ss_parquet_object_rows(ParquetReader *r)
{
	unsupported();
	return -1;
}

bool
ss_parquet_object_next(ParquetReader *r, ParquetMessage *m)
{
	unsupported();
	return false;
}

#endif
