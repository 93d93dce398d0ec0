/*
 * bronze_backfill.c
 *	  stocks_stream.load_bronze_prefix(): loads into silver what an S3
 *	  listing finds, with or without manifest rows of this database.
 *
 * It serves backfills (the old Python pipeline's bucket, objects archived by
 * another instance) and the warehouse of several instances: each listed
 * object gets a manifest row here (its Kafka source read from its key,
 * object_key.c), then everything pending under the prefix is loaded as
 * load_bronze() loads (bronze_loader.c), deduplicated by Kafka source, so a
 * rerun or an overlapping object loads nothing twice.
 *
 * Without a lookback the whole prefix is listed.  With one, the listing is
 * incremental: folders are walked with a delimiter, and in each archive
 * topic folder (<prefix>/<topic>/, holding dt=/hour= folders) only the hours
 * from the last one seen there (kept in stocks_stream.listing_marks) less
 * the lookback are listed, so a call every minute costs a few requests
 * however much the bucket holds.  An object that is written into an hour
 * older than that (an instance that lagged longer than the lookback) is
 * found by the next call without lookback.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/object_key.h"
#include "core/settings.h"
#include "load/bronze_loader.h"
#include "load/bronze_parquet.h"
#include "load/load_progress.h"
#include "s3/s3.h"
#include "s3/s3_bucket.h"

#define MAX_FOLDER_DEPTH 16

/* how many listed keys are looked up and registered per statement */
#define REGISTER_CHUNK 10000
/* how many keys a backfill lists before it loads them */
#define LIST_CHUNK 10000

typedef struct RegisterStep
{
	const char *bucket;
	const char *key;
	S3Fetch *fetch;
	bool registered;
} RegisterStep;

/* Lines of an NDJSON object (each ends with a newline). */
static int64
count_lines(const StringInfo text)
{
	int64 lines = 0;

	for (const char *p = text->data; (p = memchr(p, '\n', text->data + text->len - p)) != NULL; p++)
		lines++;
	return lines;
}

/*
 * Add the manifest row of an archive object found by LIST (its Kafka source
 * read from its key, object_key.c), once its body, the next the fetch
 * hands back, shows how many lines it holds.
 */
static void
register_step(void *arg)
{
	RegisterStep *st = arg;
	Oid types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum args[8];
	StringInfoData body;
	StringInfoData plain;
	S3Result res;
	ObjectKey k;
	int64 lines;

	ss_object_key_parse(st->key, &k);
	initStringInfo(&body);
	res = ss_s3_fetch_next(st->fetch, &body);
	if (!res.ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE), errmsg("stocks_stream: %s", res.error)));
	initStringInfo(&plain);
	if (k.format == OBJECT_FORMAT_PARQUET)
		ss_bronze_parquet_lines(&body, &plain, st->key, k.partition, k.first_offset, k.last_offset);
	else if (k.compressed)
		ss_bronze_loader_gunzip(&body, &plain, st->key);
	lines = count_lines(k.format != OBJECT_FORMAT_NDJSON ? &plain : &body);
	if (lines == 0)
		return;
	if (k.last_offset >= 0 && lines != k.last_offset - k.first_offset + 1)
		ereport(
			ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("stocks_stream: object \"%s\" holds %lld lines, not the %lld its key names",
					st->key, (long long) lines, (long long) (k.last_offset - k.first_offset + 1))));
	args[0] = CStringGetTextDatum(st->bucket);
	args[1] = CStringGetTextDatum(st->key);
	args[2] = CStringGetTextDatum(k.topic);
	args[3] = CStringGetTextDatum(res.etag);
	args[4] = Int32GetDatum(k.partition);
	args[5] = Int64GetDatum(k.first_offset);
	args[6] = Int64GetDatum(lines);
	args[7] = Int64GetDatum(body.len);
	if (SPI_execute_with_args(
			psprintf("INSERT INTO stocks_stream.manifest (pipeline, bucket, object_key, topic, "
					 " partition, first_offset, last_offset, message_count, bytes, etag, "
					 " compressed) "
					 "VALUES ('load_bronze_prefix', $1, $2, $3, $5, $6, $6 + $7 - 1, $7, $8, $4, "
					 " %s) ON CONFLICT (bucket, object_key) DO NOTHING",
					 k.compressed ? "true" : "false"),
			8, types, args, NULL, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not add to the manifest")));
	st->registered = SPI_processed > 0;
}

/* A text[] of the keys of the first n entries. */
static Datum
keys_array(S3ListEntry **entries, int n)
{
	Datum *keys = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		keys[i] = CStringGetTextDatum(entries[i]->key);
	return PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Of the bronze keys among entries, those the manifest has no row for, in order. */
static int
new_entries(const char *bucket, S3ListEntry **entries, int n, S3ListEntry **out)
{
	Oid types[2] = {TEXTOID, TEXTARRAYOID};
	Datum args[2] = {CStringGetTextDatum(bucket), keys_array(entries, n)};
	int nout = 0;

	if (SPI_execute_with_args(
			"SELECT u.i::int4 FROM unnest($2) WITH ORDINALITY AS u(k, i) "
			" WHERE NOT EXISTS (SELECT FROM stocks_stream.manifest m "
			"                    WHERE m.bucket = $1 AND m.object_key = u.k) ORDER BY u.i",
			2, types, args, NULL, true, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read the manifest")));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;
		S3ListEntry *e = entries[DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
															 SPI_tuptable->tupdesc, 1, &isnull)) -
								 1];
		ObjectKey k;

		if (ss_object_key_parse(e->key, &k) != OBJECT_KEY_OTHER)
			out[nout++] = e;
	}
	return nout;
}

/*
 * Add the manifest rows of the old Python pipeline's objects
 * (<symbol>/<unix_ts>.json, one quote each) in one statement: each is its
 * own source (topic = its key) of one message, and the listing gives its
 * ETag and size, so none is read before it is loaded.
 */
static void
register_quotes(const char *bucket, S3ListEntry **quotes, int n)
{
	Oid types[4] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum *etags = palloc(sizeof(Datum) * n);
	Datum *sizes = palloc(sizeof(Datum) * n);
	Datum args[4];

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		etags[i] = CStringGetTextDatum(quotes[i]->etag);
		sizes[i] = Int64GetDatum(quotes[i]->size);
	}
	args[0] = CStringGetTextDatum(bucket);
	args[1] = keys_array(quotes, n);
	args[2] = PointerGetDatum(construct_array(etags, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(
		construct_array(sizes, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_with_args(
			"INSERT INTO stocks_stream.manifest (pipeline, bucket, object_key, topic, partition, "
			" first_offset, last_offset, message_count, bytes, etag, compressed) "
			"SELECT 'load_bronze_prefix', $1, k, k, 0, 0, 0, 1, b, e, false "
			"  FROM unnest($2, $3, $4) WITH ORDINALITY AS u(k, e, b, i) ORDER BY i "
			"ON CONFLICT (bucket, object_key) DO NOTHING",
			4, types, args, NULL, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not add to the manifest")));
}

/*
 * Register the archive objects among the new entries, each in a
 * subtransaction of its own, their GETs in flight together.
 */
static void
register_archived(const char *bucket, S3ListEntry **objs, int n, LoadCounts *counts)
{
	S3Fetch *fetch;
	LoadProgress progress;

	if (n == 0)
		return;
	fetch =
		ss_s3_fetch_begin(ss_settings_s3_gets_in_flight, (Size) ss_settings_load_buffer_kb * 1024);
	for (int i = 0; i < n; i++)
		ss_s3_fetch_add(fetch, bucket, objs[i]->key);
	ss_load_progress_begin(&progress, "load_bronze_prefix", "read", false);
	progress.total = n;
	for (int i = 0; i < n; i++)
	{
		RegisterStep st = {bucket, objs[i]->key, fetch, false};
		char *error;

		if (!ss_bronze_loader_in_subtransaction(register_step, &st, &error))
		{
			counts->objects_failed++;
			ereport(WARNING,
					(errmsg("stocks_stream: could not read object \"%s\": %s", st.key, error),
					 errhint("A later call retries it.")));
		}
		ss_load_progress_step(&progress, counts, st.key);
	}
	ss_s3_fetch_end(fetch);
}

/*
 * Add a manifest row for each bronze object a LIST found that has none:
 * an archive object keeps its Kafka source (object_key.c reads it from the
 * key), an object of the old Python pipeline (<symbol>/<unix_ts>.json)
 * becomes its own source (topic = its key).  Other keys are skipped.
 * Looked up and registered REGISTER_CHUNK keys at a time.
 */
static void
register_keys(const char *bucket, List *entries, LoadCounts *counts)
{
	int n = list_length(entries);
	S3ListEntry **all = palloc(sizeof(S3ListEntry *) * Max(n, 1));
	S3ListEntry **fresh = palloc(sizeof(S3ListEntry *) * Max(Min(n, REGISTER_CHUNK), 1));
	S3ListEntry **quotes = palloc(sizeof(S3ListEntry *) * Max(Min(n, REGISTER_CHUNK), 1));
	S3ListEntry **archived = palloc(sizeof(S3ListEntry *) * Max(Min(n, REGISTER_CHUNK), 1));

	for (int i = 0; i < n; i++)
		all[i] = list_nth(entries, i);
	for (int from = 0; from < n; from += REGISTER_CHUNK)
	{
		int nfresh = new_entries(bucket, all + from, Min(REGISTER_CHUNK, n - from), fresh);
		int nquotes = 0, narchived = 0;

		for (int i = 0; i < nfresh; i++)
		{
			ObjectKey k;

			if (ss_object_key_parse(fresh[i]->key, &k) == OBJECT_KEY_PYTHON_QUOTE)
				quotes[nquotes++] = fresh[i];
			else
				archived[narchived++] = fresh[i];
		}
		register_quotes(bucket, quotes, nquotes);
		register_archived(bucket, archived, narchived, counts);
	}
}

/* An archive topic folder and the latest hour a listing found in it. */
typedef struct FolderMark
{
	char *folder;
	char hour[OBJECT_KEY_HOUR_LEN + 1]; /* "YYYY-MM-DD HH": sorts as text */
} FolderMark;

/* The latest hour of each archive topic folder among the listed entries. */
static List *
latest_hours(List *entries)
{
	List *marks = NIL;
	ListCell *lc;

	foreach (lc, entries)
	{
		const char *key = ((S3ListEntry *) lfirst(lc))->key;
		FolderMark *mark = NULL;
		ListCell *mc;
		ObjectKey k;

		if (ss_object_key_parse(key, &k) != OBJECT_KEY_ARCHIVE && k.kind != OBJECT_KEY_ARCHIVE_V1)
			continue;
		foreach (mc, marks)
		{
			FolderMark *m = lfirst(mc);

			if (strlen(m->folder) == k.folder_len && strncmp(m->folder, key, k.folder_len) == 0)
				mark = m;
		}
		if (mark == NULL)
		{
			mark = palloc0(sizeof(FolderMark));
			mark->folder = pnstrdup(key, k.folder_len);
			marks = lappend(marks, mark);
		}
		if (strcmp(k.hour, mark->hour) > 0)
			strlcpy(mark->hour, k.hour, sizeof(mark->hour));
	}
	return marks;
}

/*
 * Remember the latest hour listed in each archive topic folder: a row
 * each.  A mark never lies ahead of the current hour: a folder named for
 * a day to come (dt=9999-12-31) would otherwise hide every hour before it
 * from later listings.
 */
static void
note_marks(const char *bucket, List *entries)
{
	ListCell *lc;
	Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};

	foreach (lc, latest_hours(entries))
	{
		FolderMark *m = lfirst(lc);
		Datum args[3] = {CStringGetTextDatum(bucket), CStringGetTextDatum(m->folder),
						 CStringGetTextDatum(m->hour)};

		if (SPI_execute_with_args(
				"INSERT INTO stocks_stream.listing_marks AS m (bucket, folder, last_hour) "
				"VALUES ($1, $2, least(($3 || ':00')::timestamp, "
				"                      date_trunc('hour', now() AT TIME ZONE 'UTC'))) "
				"ON CONFLICT (bucket, folder) DO UPDATE "
				"SET last_hour = greatest(m.last_hour, EXCLUDED.last_hour), listed_at = now()",
				3, types, args, NULL, false, 0) != SPI_OK_INSERT)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: could not update stocks_stream.listing_marks")));
	}
}

/* The entries (S3ListEntry) listed under a prefix (max_keys: as ss_s3_list_entries). */
static List *
list_or_error(const char *bucket, const char *prefix, const char *delimiter,
			  const char *start_after, int max_keys, List **folders)
{
	List *entries;
	S3Result res =
		ss_s3_list_entries(bucket, prefix, delimiter, start_after, max_keys, &entries, folders);

	if (!res.ok)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream: could not list s3://%s/%s: %s", bucket, prefix,
							   res.error)));
	return entries;
}

/* Where the listing of a topic folder starts: its last hour less lookback. */
static char *
folder_start(const char *bucket, const char *folder, Interval *lookback)
{
	Oid types[3] = {TEXTOID, TEXTOID, INTERVALOID};
	Datum args[3] = {CStringGetTextDatum(bucket), CStringGetTextDatum(folder),
					 IntervalPGetDatum(lookback)};

	if (SPI_execute_with_args("SELECT to_char(last_hour - $3, 'YYYY-MM-DD HH24') "
							  "FROM stocks_stream.listing_marks WHERE bucket = $1 AND folder = $2",
							  3, types, args, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.listing_marks")));
	if (SPI_processed == 0)
		return NULL;
	return ss_object_key_hour_start(folder,
									SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/* Does a folder hold dt=YYYY-MM-DD/ folders (an archive topic folder)? */
static bool
holds_day_folders(const char *folder, List *subfolders)
{
	ListCell *lc;

	foreach (lc, subfolders)
		if (strncmp((char *) lfirst(lc) + strlen(folder), "dt=", 3) == 0)
			return true;
	return false;
}

/* Add the folders a chunk's listing found to `into` (kept in `cxt`), each once. */
static List *
keep_folders(List *into, List *found, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ListCell *lc;

	foreach (lc, found)
	{
		bool seen = false;
		ListCell *kc;

		foreach (kc, into)
			seen = seen || strcmp(lfirst(kc), lfirst(lc)) == 0;
		if (!seen)
			into = lappend(into, pstrdup(lfirst(lc)));
	}
	MemoryContextSwitchTo(old);
	return into;
}

/*
 * List a prefix from start_after (NULL: from its start), LIST_CHUNK keys
 * at a time, and load each chunk before listing the next: the objects
 * pending in that stretch of keys, those earlier calls left behind
 * included (the first stretch starts at the prefix, the last one runs to
 * its end).  A call over millions of objects holds one chunk's keys at a
 * time, and loads from the start.  With a delimiter, the folders found
 * are returned; with keeps_marks, each archive topic folder's latest hour
 * is remembered.
 */
static List *
list_and_load(const char *bucket, const char *prefix, const char *delimiter,
			  const char *start_after, bool keeps_marks, LoadCounts *counts, LoadProgress *progress)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext chunkcxt =
		AllocSetContextCreate(outer, "stocks_stream listing chunk", ALLOCSET_DEFAULT_SIZES);
	char *list_after = start_after ? pstrdup(start_after) : NULL;
	char *load_after = NULL;
	List *folders = NIL;
	bool last;

	do
	{
		List *entries;
		List *found = NIL;
		char *upto;

		MemoryContextSwitchTo(chunkcxt);
		entries = list_or_error(bucket, prefix, delimiter, list_after, LIST_CHUNK,
								delimiter ? &found : NULL);
		last = list_length(entries) < LIST_CHUNK;
		upto = last ? NULL : ((S3ListEntry *) llast(entries))->key;
		register_keys(bucket, entries, counts);
		if (keeps_marks)
			note_marks(bucket, entries);
		ss_bronze_loader_load_objects(
			ss_bronze_loader_pending_objects(NULL, 0, bucket, prefix, load_after, upto), counts,
			progress);
		folders = keep_folders(folders, found, outer);
		MemoryContextSwitchTo(outer);
		list_after = load_after = upto ? pstrdup(upto) : NULL;
		MemoryContextReset(chunkcxt);
	} while (!last);
	MemoryContextDelete(chunkcxt);
	return folders;
}

/*
 * Walk a folder: register and load what lies in it, then, in an archive
 * topic folder, what the hours since its mark less the lookback hold;
 * elsewhere walk the folders below.
 */
static void
walk(const char *bucket, const char *folder, Interval *lookback, int depth, LoadCounts *counts,
	 LoadProgress *progress)
{
	List *subfolders = list_and_load(bucket, folder, "/", NULL, false, counts, progress);
	ListCell *lc;

	if (holds_day_folders(folder, subfolders))
	{
		list_and_load(bucket, folder, NULL, folder_start(bucket, folder, lookback), true, counts,
					  progress);
		return;
	}
	if (depth >= MAX_FOLDER_DEPTH)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("stocks_stream: s3://%s/%s is nested more than %d folders deep",
							   bucket, folder, MAX_FOLDER_DEPTH),
						errhint("Call load_bronze_prefix() on a deeper prefix.")));
	foreach (lc, subfolders)
		walk(bucket, lfirst(lc), lookback, depth + 1, counts, progress);
}

PG_FUNCTION_INFO_V1(ss_load_bronze_prefix);

/*
 * load_bronze_prefix(bucket, prefix [, lookback]): list, register, load.
 * (0.1.0 declares it without lookback: then the whole prefix is listed
 * and no marks are kept, as that version has no listing_marks.)
 */
Datum
ss_load_bronze_prefix(PG_FUNCTION_ARGS)
{
	char *bucket = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char *prefix = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool keeps_marks = PG_NARGS() > 2;
	Interval *lookback = keeps_marks && !PG_ARGISNULL(2) ? PG_GETARG_INTERVAL_P(2) : NULL;
	LoadCounts counts = {0};
	LoadProgress progress;

	if (bucket == NULL || bucket[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.load_bronze_prefix: bucket must be given"),
						errhint("Name the S3 bucket to read, e.g. 'bronze'.")));
	ss_s3_bucket_check(bucket);
	if (prefix == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.load_bronze_prefix: prefix must not be NULL"),
						errhint("Use '' for the whole bucket.")));
	if (lookback != NULL && (lookback->time < 0 || lookback->day < 0 || lookback->month < 0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.load_bronze_prefix: lookback must not be negative"),
						errhint("Use an interval such as '1 hour', or NULL to list everything.")));

	SPI_connect();
	ss_load_progress_begin(&progress, "load_bronze_prefix", "loaded", true);
	if (lookback != NULL)
		walk(bucket, prefix, lookback, 0, &counts, &progress);
	else
		(void) list_and_load(bucket, prefix, NULL, NULL, keeps_marks, &counts, &progress);
	SPI_finish();
	PG_RETURN_DATUM(ss_bronze_loader_counts_row(fcinfo, &counts));
}
