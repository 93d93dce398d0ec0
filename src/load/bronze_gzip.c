/*
 * bronze_gzip.c
 *	  Inflating a gzip'd object from S3 without trusting it.
 *
 * An object's bytes come from outside: a small object may inflate to any
 * size (a gzip bomb), stop in the middle of a member (truncated), hold
 * several members one after another (gzip allows it, `cat a.gz b.gz`) or
 * be no gzip at all.  Every member is inflated, the output is bounded by
 * the caller (stocks_stream.max_object_size) before it is allocated, and
 * anything else is refused with a reason.  A pure function of its bytes
 * (zlib and a StringInfo), so it is fuzzed as it runs.
 */
#include "postgres.h"

#include <zlib.h>

#include "utils/memutils.h"

#include "load/bronze_gzip.h"

#define INFLATE_CHUNK (1024 * 1024)

/* Inflate members from zs into out until the input ends; a zlib code. */
static int
inflate_members(z_stream *zs, StringInfo out, size_t max_out, bool *too_large)
{
	int rc;

	for (;;)
	{
		size_t room = Min((size_t) INFLATE_CHUNK, max_out - (size_t) out->len);

		if (room == 0)
		{
			*too_large = true;
			return Z_BUF_ERROR;
		}
		enlargeStringInfo(out, (int) room);
		zs->next_out = (Bytef *) out->data + out->len;
		zs->avail_out = (uInt) room;
		rc = inflate(zs, Z_NO_FLUSH);
		out->len = (char *) zs->next_out - out->data;
		if (rc == Z_STREAM_END && zs->avail_in > 0)
			rc = inflateReset(zs); /* the next member */
		else if (rc == Z_STREAM_END || rc != Z_OK)
			return rc;
		else if (zs->avail_in == 0 && zs->avail_out > 0)
			return Z_BUF_ERROR; /* the input ended inside a member */
	}
}

/*
 * Gunzip `in` into `out` (reset first, NUL-terminated), at most max_out
 * bytes; false, with a reason, when the object is not whole, valid gzip or
 * would inflate beyond max_out.
 */
bool
ss_bronze_gzip_inflate(const char *in, size_t in_len, StringInfo out, size_t max_out, char *reason,
					   size_t reason_len)
{
	z_stream zs;
	bool too_large = false;
	int rc;

	resetStringInfo(out);
	max_out = Min(max_out, MaxAllocSize - INFLATE_CHUNK);
	memset(&zs, 0, sizeof(zs));
	if (in_len > UINT_MAX || inflateInit2(&zs, 15 + 16) != Z_OK)
	{
		snprintf(reason, reason_len, "could not start gunzip");
		return false;
	}
	zs.next_in = (Bytef *) in;
	zs.avail_in = (uInt) in_len;
	rc = in_len == 0 ? Z_BUF_ERROR : inflate_members(&zs, out, max_out, &too_large);
	inflateEnd(&zs);
	out->data[out->len] = '\0';
	if (too_large)
		snprintf(reason, reason_len,
				 "inflates to more than stocks_stream.max_object_size (%zu kB); not loaded",
				 max_out / 1024);
	else if (rc != Z_STREAM_END)
		snprintf(reason, reason_len, "is not whole, valid gzip (zlib code %d)", rc);
	return !too_large && rc == Z_STREAM_END;
}
