/*
 * s3_bucket.c
 *	  The one rule for an S3 bucket name, and its SQL face
 *	  stocks_stream._check_bucket(text), which every SQL function that
 *	  takes a bucket calls (create_pipeline, alter_pipeline), as
 *	  load_bronze_prefix() calls ss_s3_bucket_check() in C.
 *
 * The rule is S3's: 3 to 63 lower-case letters, digits, '.' and '-',
 * starting and ending with a letter or digit, no "..", and not shaped like
 * an IPv4 address.  A name outside it never reaches a request URL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "s3/s3_bucket.h"

#define BUCKET_MIN_LEN 3
#define BUCKET_MAX_LEN 63

static bool
lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Four dot-separated runs of digits, as 192.168.5.4. */
static bool
looks_like_ipv4(const char *name)
{
	int dots = 0;
	bool digits = false;

	for (const char *p = name; *p != '\0'; p++)
	{
		if (*p == '.')
		{
			if (!digits)
				return false;
			dots++;
			digits = false;
		}
		else if (*p >= '0' && *p <= '9')
			digits = true;
		else
			return false;
	}
	return dots == 3 && digits;
}

bool
ss_s3_bucket_valid(const char *name)
{
	size_t len = name == NULL ? 0 : strlen(name);

	if (len < BUCKET_MIN_LEN || len > BUCKET_MAX_LEN)
		return false;
	if (!lower_alnum(name[0]) || !lower_alnum(name[len - 1]))
		return false;
	for (size_t i = 1; i + 1 < len; i++)
		if (!lower_alnum(name[i]) && name[i] != '.' && name[i] != '-')
			return false;
	return strstr(name, "..") == NULL && !looks_like_ipv4(name);
}

/* ERROR unless name (NULL allowed) is a valid bucket name. */
void
ss_s3_bucket_check(const char *name)
{
	if (!ss_s3_bucket_valid(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stocks_stream: invalid S3 bucket name %s",
						name == NULL ? "NULL" : psprintf("\"%s\"", name)),
				 errhint("S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', "
						 "starting and ending with a letter or digit.")));
}

PG_FUNCTION_INFO_V1(ss_check_bucket);

/* _check_bucket(bucket text) -> void, ERROR if it is not a bucket name */
Datum
ss_check_bucket(PG_FUNCTION_ARGS)
{
	ss_s3_bucket_check(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
