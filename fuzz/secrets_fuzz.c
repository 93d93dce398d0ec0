/*
 * secrets_fuzz.c
 *	  Fuzzes the secrets file parser (src/core/secrets.c, ss_secrets_read and
 *	  its parse_line): the input is the file's content, read through
 *	  fmemopen with the very fgets loop a real file goes through.  A line
 *	  without '=' is an ERROR: a clean rejection.
 */
#include "postgres.h"

#include "core/secrets.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size);
	FILE *volatile f;

	if (size == 0)
		return; /* fmemopen wants a buffer; an empty file holds no line anyway */
	f = fmemopen(text, size, "r");
	if (f == NULL)
		abort();
	PG_TRY();
	{
		ss_secrets_read(f, "fuzz.secrets");
	}
	PG_FINALLY();
	{
		fclose(f);
	}
	PG_END_TRY();
}
