/*
 * s3_list_page_fuzz.c
 *	  Fuzzes ss_s3_list_page_parse (src/s3/s3_list_page.c): the input is a
 *	  ListObjectsV2 response body.  Keys, entries and folders are all
 *	  asked for, as a backfill's listing does, and what comes back is
 *	  checked against what the callers rely on: every key and folder one
 *	  a request may name (ss_s3_list_page_key_acceptable), one entry per key.
 */
#include "postgres.h"

#include "s3/s3.h"
#include "s3/s3_list_page.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	const char *xml = fuzz_cstring(data, size);
	List *keys = NIL;
	List *entries = NIL;
	List *folders = NIL;
	List *only_keys = NIL;
	int refused = 0;
	int refused_again = 0;
	char *token;
	ListCell *lc;

	token = ss_s3_list_page_parse(xml, &keys, &entries, &folders, &refused);
	if (list_length(entries) != list_length(keys) || refused < 0)
		abort();
	foreach (lc, keys)
		if (!ss_s3_list_page_key_acceptable(lfirst(lc)))
			abort();
	foreach (lc, folders)
		if (!ss_s3_list_page_key_acceptable(lfirst(lc)))
			abort();
	foreach (lc, entries)
	{
		S3ListEntry *e = lfirst(lc);

		if (e->key == NULL || strnlen(e->etag, sizeof(e->etag)) == sizeof(e->etag))
			abort();
	}
	if (token != NULL)
		(void) strlen(token);
	/* as s3_async.c reads a page: keys only */
	(void) ss_s3_list_page_parse(xml, &only_keys, NULL, NULL, &refused_again);
	if (list_length(only_keys) != list_length(keys))
		abort();
}
