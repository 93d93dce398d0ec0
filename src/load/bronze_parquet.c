/*
 * bronze_parquet.c
 *	  An archived Parquet object (format 'parquet', src/archive/batch_parquet.c)
 *	  turned into the text the loader reads from an NDJSON object: each row's
 *	  value on a line of its own, line N holding offset first_offset + N, so
 *	  both formats share one load path, quarantine included.
 *
 * The object is outside bytes: the library (src/lake/) refuses what is
 * not Parquet or lacks an archive object's columns, and here every row
 * must be of the key's partition and follow the one before it from the
 * key's first offset to its last, else the object stays in the manifest,
 * marked failed.  A CR or LF inside a value becomes a space, as in an
 * NDJSON object (valid JSON has them only as insignificant whitespace).
 * The text is bounded by stocks_stream.max_object_size.
 */
#include "postgres.h"

#include "core/settings.h"
#include "lake/parquet_object.h"
#include "load/bronze_parquet.h"

static void
corrupt(const char *key, const char *what)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
					errmsg("stocks_stream: Parquet object \"%s\" %s", key, what),
					errhint("It stays in the manifest, marked failed.")));
}

/*
 * The object `in` as lines into `out` (reset first); its rows' count.
 * last_offset -1: the key does not name it.
 */
int64
ss_bronze_parquet_lines(StringInfo in, StringInfo out, const char *key, int32 partition,
						int64 first_offset, int64 last_offset)
{
	size_t max_out = ss_settings_max_object_bytes();
	ParquetReader *r = ss_parquet_object_open(in->data, in->len, key);
	ParquetMessage m;
	int64 n = 0;

	resetStringInfo(out);
	while (ss_parquet_object_next(r, &m))
	{
		size_t at = out->len;
		char *p;

		if (m.partition != partition)
			corrupt(key, psprintf("holds a row of partition %d, not of its key's %d", m.partition,
								  partition));
		if (m.offset != first_offset + n || (last_offset >= 0 && m.offset > last_offset))
			corrupt(key, psprintf("holds offset %lld where its key's offsets want %lld",
								  (long long) m.offset, (long long) (first_offset + n)));
		if (out->len + m.value_len + 1 > max_out)
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							errmsg("stocks_stream: Parquet object \"%s\" holds more than "
								   "stocks_stream.max_object_size of values",
								   key),
							errhint("It stays in the manifest, marked failed; raise "
									"stocks_stream.max_object_size to load it.")));
		appendBinaryStringInfo(out, m.value, m.value_len);
		for (p = out->data + at; (p = memchr(p, '\n', out->data + out->len - p)) != NULL;)
			*p++ = ' ';
		for (p = out->data + at; (p = memchr(p, '\r', out->data + out->len - p)) != NULL;)
			*p++ = ' ';
		appendStringInfoChar(out, '\n');
		n++;
	}
	if (last_offset >= 0 && n != last_offset - first_offset + 1)
		corrupt(key, psprintf("holds %lld rows, not the %lld its key names", (long long) n,
							  (long long) (last_offset - first_offset + 1)));
	return n;
}
