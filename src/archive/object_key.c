/*
 * object_key.c
 *	  Formats and parses the S3 key of a bronze object.
 *
 *	  <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first>-<last>.ndjson[.gz]
 *	  ... or <partition>-<first>-<last>.parquet (a pipeline of format 'parquet')
 *
 * with the offsets as 20 digits and the date and hour (UTC) of the first
 * message's timestamp.  The objects of a topic deleted and created again
 * (archive_topic.c) name it <topic>~<topic id>: Kafka's id of that
 * incarnation, 22 characters of URL-safe base64; '~' is never part of a
 * topic name, so such a folder is no other topic's, and the loaders take it
 * as a source topic of its own.  The key names both the first and the last offset,
 * so one key always means the same bytes: a writer that lost its partition
 * (a zombie) and flushes late writes a key of its own and can never replace
 * the object of the partition's new owner with a shorter one.  Keys of
 * 0.1.0 (first offset only) and of the old Python pipeline
 * (<symbol>/<unix_ts>.json, one quote each) are still read.
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"

#include "archive/object_key.h"
#include "core/symbol.h"

#define OFFSET_DIGITS  20
#define TOPIC_CHARS	   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define TOPIC_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define TOPIC_ID_LEN   22

/* by ObjectFormat */
static const char *const extensions[] = {".ndjson", ".ndjson.gz", ".parquet"};

/*
 * The part of an object's key its first message fixes:
 * <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first>-
 */
char *
ss_object_key_format_start(const char *prefix, const char *topic, int32 partition,
						   int64 first_offset, int64 first_timestamp_ms)
{
	time_t secs = (time_t) (first_timestamp_ms / 1000);
	struct tm tm;

	if (first_timestamp_ms < 0)
		secs = time(NULL);
	gmtime_r(&secs, &tm);
	return psprintf("%s%s%s/dt=%04d-%02d-%02d/hour=%02d/%d-%0*lld-", prefix, prefix[0] ? "/" : "",
					topic, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, partition,
					OFFSET_DIGITS, (long long) first_offset);
}

char *
ss_object_key_format(const char *prefix, const char *topic, int32 partition, int64 first_offset,
					 int64 last_offset, int64 first_timestamp_ms, ObjectFormat format)
{
	return psprintf(
		"%s%0*lld%s",
		ss_object_key_format_start(prefix, topic, partition, first_offset, first_timestamp_ms),
		OFFSET_DIGITS, (long long) last_offset, extensions[format]);
}

/* Exactly n digits at *p (advanced past them) as a number. */
static bool
take_digits(const char **p, int n, int64 *value)
{
	int64 v = 0;

	for (int i = 0; i < n; i++)
	{
		if ((*p)[i] < '0' || (*p)[i] > '9' || v > (PG_INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*value = v;
	return true;
}

/* 1 to 10 digits: a partition number. */
static bool
take_partition(const char **p, int32 *value)
{
	size_t n = strspn(*p, "0123456789");
	int64 v;

	if (n < 1 || n > 9 || !take_digits(p, (int) n, &v))
		return false;
	*value = (int32) v;
	return true;
}

/* The file name: <partition>-<first>[-<last>].ndjson[.gz], or -<last>.parquet */
static ObjectKeyKind
parse_file_name(const char *name, ObjectKey *out)
{
	const char *p = name;
	ObjectKeyKind kind = OBJECT_KEY_ARCHIVE_V1;

	out->last_offset = -1;
	if (!take_partition(&p, &out->partition) || *p++ != '-' ||
		!take_digits(&p, OFFSET_DIGITS, &out->first_offset))
		return OBJECT_KEY_OTHER;
	if (*p == '-')
	{
		p++;
		if (!take_digits(&p, OFFSET_DIGITS, &out->last_offset) ||
			out->last_offset < out->first_offset)
			return OBJECT_KEY_OTHER;
		kind = OBJECT_KEY_ARCHIVE;
	}
	for (int f = 0; f < (int) lengthof(extensions); f++)
		if (strcmp(p, extensions[f]) == 0)
		{
			/* Parquet came after 0.1.0's keys */
			if (f == OBJECT_FORMAT_PARQUET && kind != OBJECT_KEY_ARCHIVE)
				return OBJECT_KEY_OTHER;
			out->format = (ObjectFormat) f;
			out->compressed = f == OBJECT_FORMAT_NDJSON_GZ;
			return kind;
		}
	return OBJECT_KEY_OTHER;
}

/* A topic folder's name: <topic>, or <topic>~<topic id> (a re-created topic). */
static bool
topic_segment_valid(const char *topic, size_t len)
{
	const char *tilde = memchr(topic, '~', len);
	size_t name = tilde ? (size_t) (tilde - topic) : len;

	if (name < 1 || name > 249 || strspn(topic, TOPIC_CHARS) < name)
		return false;
	return tilde == NULL ||
		   (len - name - 1 == TOPIC_ID_LEN && strspn(tilde + 1, TOPIC_ID_CHARS) >= TOPIC_ID_LEN);
}

/*
 * Unix seconds of a UTC date and hour that exist on the calendar, from
 * 1970 to 9999; -1 for any other ("dt=9999-99-99/hour=99", which SQL
 * could not cast).
 */
static int64
calendar_hour(int64 y, int64 m, int64 d, int64 h)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	int64 days;

	if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 ||
		d > mdays[m - 1] + (m == 2 && leap ? 1 : 0) || h < 0 || h > 23)
		return -1;
	/* days from 1970-03-01-based civil arithmetic */
	y -= m <= 2;
	days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1 -
		   719468;
	return days * 86400 + h * 3600;
}

/* "YYYY-MM-DD" and "HH" at dt and hr as unix seconds, or -1 (calendar_hour). */
static int64
folder_time(const char *dt, const char *hr)
{
	int64 y, m, d, h;
	const char *p = dt;
	const char *q = hr;

	if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &m) || *p++ != '-' ||
		!take_digits(&p, 2, &d) || !take_digits(&q, 2, &h))
		return -1;
	return calendar_hour(y, m, d, h);
}

/*
 * [<prefix>/]<topic>/dt=YYYY-MM-DD/hour=HH/ ending at `file`: its parts go
 * to *out.  False when the key does not have that shape.
 */
static bool
parse_topic_dirs(const char *key, const char *file, ObjectKey *out)
{
	const char *hour, *dt, *topic;
	size_t len;

	/* "dt=YYYY-MM-DD/hour=HH/" is 22 characters before the file name */
	if (file - key < 24)
		return false;
	hour = file - 8;
	dt = hour - 14;
	if (strncmp(hour, "hour=", 5) != 0 || strspn(hour + 5, "0123456789") != 2 || hour[7] != '/' ||
		strncmp(dt, "dt=", 3) != 0 || strspn(dt + 3, "0123456789-") != 10 || dt[13] != '/' ||
		dt[-1] != '/')
		return false;
	/* the topic is the path segment before dt= */
	for (topic = dt - 1; topic > key && topic[-1] != '/'; topic--)
		;
	len = (dt - 1) - topic;
	if (!topic_segment_valid(topic, len))
		return false;
	if ((out->time = folder_time(dt + 3, hour + 5)) < 0)
		return false;
	out->topic = pnstrdup(topic, len);
	out->prefix = pnstrdup(key, topic > key ? topic - key - 1 : 0);
	out->folder_len = dt - key;
	snprintf(out->hour, sizeof(out->hour), "%.10s %.2s", dt + 3, hour + 5);
	return true;
}

/* <symbol>/<unix_ts>.json at the top of the bucket; its time to *time */
static bool
parse_python_quote(const char *key, int64 *time)
{
	const char *slash = strchr(key, '/');
	size_t sym = slash ? (size_t) (slash - key) : 0;
	const char *p;
	size_t digits;

	if (!ss_symbol_valid(key, sym))
		return false;
	p = slash + 1;
	digits = strspn(p, "0123456789");
	if (digits < 1 || strcmp(p + digits, ".json") != 0)
		return false;
	/* a time past 9999 (or of more digits than a number holds) is no time */
	if (digits > 12 || !take_digits(&p, (int) digits, time) || *time > 253402300799)
		*time = -1;
	return true;
}

/* What kind of key this is; an archive key's parts go to *out. */
ObjectKeyKind
ss_object_key_parse(const char *key, ObjectKey *out)
{
	const char *file = strrchr(key, '/');

	memset(out, 0, sizeof(ObjectKey));
	out->last_offset = -1;
	out->time = -1;
	if (parse_python_quote(key, &out->time))
		return out->kind = OBJECT_KEY_PYTHON_QUOTE;
	if (file == NULL)
		return OBJECT_KEY_OTHER;
	out->kind = parse_file_name(file + 1, out);
	if (out->kind != OBJECT_KEY_OTHER && !parse_topic_dirs(key, file + 1, out))
		out->kind = OBJECT_KEY_OTHER;
	return out->kind;
}

/*
 * The key every object of a folder from `hour` ("YYYY-MM-DD HH") on sorts
 * after: for a listing that starts there.
 */
char *
ss_object_key_hour_start(const char *folder, const char *hour)
{
	return psprintf("%sdt=%.10s/hour=%.2s", folder, hour, hour + 11);
}

PG_FUNCTION_INFO_V1(ss_parse_object_key);

/*
 * parse_object_key(key) -> (kind, prefix, topic, day, hour, partition,
 * first_offset, last_offset, compressed); kind is 'archive', 'archive_v1',
 * 'python_quote' or NULL with every other field NULL.
 */
Datum
ss_parse_object_key(PG_FUNCTION_ARGS)
{
	static const char *const kinds[] = {NULL, "archive", "archive_v1", "python_quote"};
	char *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ObjectKey k;
	TupleDesc tupdesc;
	Datum values[9] = {0};
	bool nulls[9];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream.parse_object_key must return a row")));
	memset(nulls, true, sizeof(nulls));
	if (ss_object_key_parse(key, &k) != OBJECT_KEY_OTHER)
	{
		values[0] = CStringGetTextDatum(kinds[k.kind]);
		nulls[0] = false;
	}
	if (k.kind == OBJECT_KEY_ARCHIVE || k.kind == OBJECT_KEY_ARCHIVE_V1)
	{
		k.hour[10] = '\0'; /* "YYYY-MM-DD" and "HH" */
		values[1] = CStringGetTextDatum(k.prefix);
		values[2] = CStringGetTextDatum(k.topic);
		values[3] = DirectFunctionCall1(date_in, CStringGetDatum(k.hour));
		values[4] = Int32GetDatum(atoi(k.hour + 11));
		values[5] = Int32GetDatum(k.partition);
		values[6] = Int64GetDatum(k.first_offset);
		values[7] = Int64GetDatum(k.last_offset);
		values[8] = BoolGetDatum(k.compressed);
		memset(nulls + 1, false, sizeof(bool) * 8);
		nulls[7] = (k.last_offset < 0);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
