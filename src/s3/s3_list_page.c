/*
 * s3_list_page.c
 *	  Reading one ListObjectsV2 page, and which keys we accept from one.
 *
 * A listing comes from outside: its keys become object keys we GET, rows
 * of the manifest (text, so valid UTF-8) and folders we walk.  A key that
 * is not valid UTF-8, holds a control character, is longer than S3 allows
 * or has a "." or ".." path segment (which libcurl or a proxy may collapse,
 * so that the request would name another object or bucket than the key)
 * is refused here, and build_url (s3.c) refuses to send one too.  Pure
 * functions of the page's text, so they are fuzzed as they run.
 */
#include "postgres.h"

#include "common/string.h"
#include "mb/pg_wchar.h"

#include "s3/s3_internal.h"
#include "s3/s3_list_page.h"

/* S3's own limit on a key's length, in bytes */
#define S3_MAX_KEY_BYTES 1024

/* True for a key (or prefix) a request may name as it is. */
bool
ss_s3_list_page_key_acceptable(const char *key)
{
	size_t len = strlen(key);
	const char *seg = key;

	if (len == 0 || len > S3_MAX_KEY_BYTES ||
		pg_encoding_verifymbstr(PG_UTF8, key, (int) len) != (int) len)
		return false;
	for (const char *p = key; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			return false;
	for (;;)
	{
		const char *end = strchr(seg, '/');
		size_t n = end ? (size_t) (end - seg) : strlen(seg);

		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (end == NULL)
			return true;
		seg = end + 1;
	}
}

/*
 * Decode the XML entity at *p (before end), named or numeric (MinIO
 * writes an ETag's quotes as &#34;), onto out, and leave *p on its ';'.
 * False when it is none we know: the '&' is then kept as it is.
 */
static bool
append_entity(StringInfo out, const char **p, const char *end)
{
	static const char *const named[][2] = {
		{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
	const char *s = *p;
	const char *semi = memchr(s, ';', Min(end - s, 12));
	unsigned char utf8[8] = {0};
	long code;
	char *stop;

	if (semi == NULL)
		return false;
	for (size_t i = 0; i < lengthof(named); i++)
		if (strncmp(s, named[i][0], strlen(named[i][0])) == 0)
		{
			appendStringInfoString(out, named[i][1]);
			*p = s + strlen(named[i][0]) - 1;
			return true;
		}
	if (s[1] != '#')
		return false;
	errno = 0;
	code = (s[2] == 'x' || s[2] == 'X') ? strtol(s + 3, &stop, 16) : strtol(s + 2, &stop, 10);
	if (errno != 0 || stop != semi || stop == s + 2 || code < 1 || code > 0x10FFFF ||
		(code >= 0xD800 && code <= 0xDFFF))
		return false;
	unicode_to_utf8((pg_wchar) code, utf8);
	appendBinaryStringInfo(out, (char *) utf8, pg_utf_mblen(utf8));
	*p = semi;
	return true;
}

/* Text of the first <tag>...</tag> at or after *pos, XML entities decoded. */
static char *
xml_next(const char *xml, const char *tag, const char **pos)
{
	char *open = psprintf("<%s>", tag);
	char *close = psprintf("</%s>", tag);
	const char *start = strstr(*pos, open);
	const char *end;
	StringInfoData out;

	if (start == NULL || (end = strstr(start, close)) == NULL)
		return NULL;
	start += strlen(open);
	*pos = end + strlen(close);
	initStringInfo(&out);
	for (const char *p = start; p < end; p++)
		if (*p != '&' || !append_entity(&out, &p, end))
			appendStringInfoChar(&out, *p);
	return out.data;
}

/*
 * The listing's entry for `key`: its ETag (unquoted, as a GET's header
 * gives it) and Size follow the <Key> in the same <Contents>.
 */
static S3ListEntry *
list_entry(char *key, const char *xml, const char **pos)
{
	S3ListEntry *e = palloc0(sizeof(S3ListEntry));
	const char *at = *pos;
	char *etag = xml_next(xml, "ETag", &at);
	char *size = xml_next(xml, "Size", &at);
	size_t len;

	e->key = key;
	if (etag != NULL)
	{
		while (*etag == '"')
			etag++;
		len = strlen(etag);
		while (len > 0 && etag[len - 1] == '"')
			len--;
		strlcpy(e->etag, etag, Min(len + 1, sizeof(e->etag)));
	}
	e->size = size ? strtoll(size, NULL, 10) : -1;
	return e;
}

/*
 * Append one listing page's keys (and, when asked, their entries and the
 * common prefixes) to the lists; returns the continuation token of the
 * next page, or NULL on the last one.  Keys and prefixes no request may
 * name (ss_s3_list_page_key_acceptable) are left out and counted in *refused.
 */
char *
ss_s3_list_page_parse(const char *xml, List **keys, List **entries, List **folders, int *refused)
{
	const char *pos = xml;
	char *item;
	char *truncated;

	while ((item = xml_next(xml, "Key", &pos)) != NULL)
	{
		if (!ss_s3_list_page_key_acceptable(item))
		{
			(*refused)++;
			continue;
		}
		*keys = lappend(*keys, item);
		if (entries != NULL)
			*entries = lappend(*entries, list_entry(item, xml, &pos));
	}
	for (pos = xml; folders != NULL && (pos = strstr(pos, "<CommonPrefixes>")) != NULL;)
	{
		pos += strlen("<CommonPrefixes>");
		if ((item = xml_next(xml, "Prefix", &pos)) == NULL)
			continue;
		if (ss_s3_list_page_key_acceptable(item))
			*folders = lappend(*folders, item);
		else
			(*refused)++;
	}
	pos = xml;
	truncated = xml_next(xml, "IsTruncated", &pos);
	pos = xml;
	return (truncated && strcmp(truncated, "true") == 0)
			   ? xml_next(xml, "NextContinuationToken", &pos)
			   : NULL;
}
