/*
 * object_key.h
 *	  The S3 key of a bronze object: written by the archive worker, read by
 *	  the loaders and by SQL (stocks_stream.parse_object_key).
 */
#ifndef STOCKS_STREAM_OBJECT_KEY_H
#define STOCKS_STREAM_OBJECT_KEY_H

typedef enum ObjectKeyKind
{
	OBJECT_KEY_OTHER = 0,	/* not a bronze object */
	OBJECT_KEY_ARCHIVE,		/* <partition>-<first>-<last>.ndjson[.gz] or .parquet */
	OBJECT_KEY_ARCHIVE_V1,	/* 0.1.0: <partition>-<first>.ndjson[.gz] */
	OBJECT_KEY_PYTHON_QUOTE /* the old Python pipeline: <symbol>/<ts>.json */
} ObjectKeyKind;

/* what an archive object holds: its key's extension */
typedef enum ObjectFormat
{
	OBJECT_FORMAT_NDJSON = 0, /* .ndjson */
	OBJECT_FORMAT_NDJSON_GZ,  /* .ndjson.gz */
	OBJECT_FORMAT_PARQUET	  /* .parquet (0.5.0) */
} ObjectFormat;

#define OBJECT_KEY_HOUR_LEN 13 /* YYYY-MM-DD HH */

typedef struct ObjectKey
{
	ObjectKeyKind kind;
	char *prefix;						/* palloc'd, "" for none; NULL for a Python quote */
	char *topic;						/* palloc'd; NULL for a Python quote */
	size_t folder_len;					/* of "<prefix>/<topic>/", the key's part before dt= */
	char hour[OBJECT_KEY_HOUR_LEN + 1]; /* "YYYY-MM-DD HH" (UTC) of the first message */
	int64 time; /* that hour, or a Python quote's <ts>, in unix seconds; -1: none */
	int32 partition;
	int64 first_offset;
	int64 last_offset; /* -1 when the key does not say (0.1.0 keys) */
	bool compressed;   /* gzip'd NDJSON */
	ObjectFormat format;
} ObjectKey;

extern char *ss_object_key_format_start(const char *prefix, const char *topic, int32 partition,
										int64 first_offset, int64 first_timestamp_ms);
extern char *ss_object_key_format(const char *prefix, const char *topic, int32 partition,
								  int64 first_offset, int64 last_offset, int64 first_timestamp_ms,
								  ObjectFormat format);
extern ObjectKeyKind ss_object_key_parse(const char *key, ObjectKey *out);
extern char *ss_object_key_hour_start(const char *folder, const char *hour);

#endif
