/*
 * parquet_fuzz.c
 *	  Fuzzes ss_bronze_parquet_lines (src/load/bronze_parquet.c) over
 *	  src/lake/parquet_object.c and lake/parquet_ffi (the Rust crate
 *	  parquet): the input is a .parquet object's body as S3 returns it.
 *	  What the loader relies on is checked: the library's panics and errors
 *	  come back as an ERROR (a clean rejection), never an abort; an
 *	  accepted object gives one line per row, each ending in a newline and
 *	  holding no other, within stocks_stream.max_object_size; the reader is
 *	  freed with its memory context (LeakSanitizer sees Rust's memory too).
 */
#include "postgres.h"

#include "core/settings.h"
#include "load/bronze_parquet.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	StringInfoData in;
	StringInfoData out;
	int64 rows;
	int64 newlines = 0;

	/* small, so a page that claims to inflate past it is a finding, not a slow run */
	ss_settings_max_object_kb = 16384;
	initStringInfo(&in);
	appendBinaryStringInfo(&in, (const char *) data, (int) size);
	initStringInfo(&out);
	rows = ss_bronze_parquet_lines(&in, &out, "fuzz/0-00000000000000000000-x.parquet", 0, 0, -1);
	for (int i = 0; i < out.len; i++)
		newlines += out.data[i] == '\n';
	if (newlines != rows || (rows > 0 && out.data[out.len - 1] != '\n') ||
		(size_t) out.len > ss_settings_max_object_bytes())
		abort();
}
