/*
 * gzip_fuzz.c
 *	  Fuzzes ss_bronze_gzip_inflate (src/load/bronze_gzip.c): the input is an
 *	  object's body as S3 returns it.  It is inflated twice: under a bound
 *	  of 1 MB (which a 4 kB input can exceed: a small gzip bomb), and under
 *	  a bound of the input's own length, so the bound is met at every point
 *	  of a member and between members.  What the loader relies on is
 *	  checked: the output within its bound and NUL-terminated, a reason
 *	  whenever it is refused.
 */
#include "postgres.h"

#include "load/bronze_gzip.h"

#include "harness.h"

static void
inflate_within(const char *in, size_t len, size_t max_out)
{
	StringInfoData out;
	char reason[256];
	bool ok;

	initStringInfo(&out);
	reason[0] = '\0';
	ok = ss_bronze_gzip_inflate(in, len, &out, max_out, reason, sizeof(reason));
	if ((size_t) out.len > max_out || out.data[out.len] != '\0' || (!ok && reason[0] == '\0'))
		abort();
	pfree(out.data);
}

void
fuzz_target(const uint8_t *data, size_t size)
{
	const char *in = (const char *) data;

	inflate_within(in, size, 1024 * 1024);
	inflate_within(in, size, size);
}
