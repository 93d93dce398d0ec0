/*
 * object_key_fuzz.c
 *	  Fuzzes ss_object_key_parse (src/archive/object_key.c): the input is an S3 key as
 *	  a listing gives it.  For an archive key, the folder it names is also
 *	  turned into the start of an hour's listing (ss_object_key_hour_start), as
 *	  the probes and backfill do.
 */
#include "postgres.h"

#include "archive/object_key.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	const char *key = fuzz_cstring(data, size);
	ObjectKey k;

	switch (ss_object_key_parse(key, &k))
	{
		case OBJECT_KEY_ARCHIVE:
		case OBJECT_KEY_ARCHIVE_V1:
			/* what the loaders rely on */
			if (k.folder_len > strlen(key) || strlen(k.hour) != OBJECT_KEY_HOUR_LEN ||
				strlen(k.topic) == 0 || k.partition < 0 || k.first_offset < 0 ||
				(k.kind == OBJECT_KEY_ARCHIVE && k.last_offset < k.first_offset))
				abort();
			(void) ss_object_key_hour_start(pnstrdup(key, k.folder_len), k.hour);
			break;
		case OBJECT_KEY_PYTHON_QUOTE:
		case OBJECT_KEY_OTHER:
			break;
	}
}
