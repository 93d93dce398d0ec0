/*
 * bronze_loader.c
 *	  stocks_stream.load_bronze(): loads archived objects listed in the
 *	  manifest into the silver tables, exactly once.
 *
 * The objects not loaded yet are locked (FOR UPDATE SKIP LOCKED, so two
 * callers never take the same object), then each is loaded in a
 * subtransaction of its own: GET from S3, gunzip when compressed (a
 * Parquet object's rows become lines: bronze_parquet.c), split
 * into lines (line N is offset first_offset + N), check each line
 * (bronze_record.c), drop the offsets silver already holds, COPY the good
 * rows into stocks_stream.quotes / .trades with Postgres' own binary COPY FROM
 * machinery (partition routing, indexes and constraints included), record
 * the bad lines in stocks_stream.quarantine with their reason, and mark the
 * manifest row loaded.  An object that cannot be read (S3 down, 404,
 * corrupt gzip) is rolled back to its subtransaction, marked failed with
 * the error and retried by a later call; the others go on.  Backfill from
 * an S3 listing (load_bronze_prefix) is bronze_backfill.c.
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "archive/object_key.h"
#include "core/clock.h"
#include "core/pg_compat.h"
#include "core/settings.h"
#include "load/bronze_gzip.h"
#include "load/bronze_loader.h"
#include "load/bronze_parquet.h"
#include "load/bronze_record.h"
#include "load/load_progress.h"
#include "s3/s3.h"

typedef struct ObjectRef
{
	int64 object_id;
	char *bucket;
	char *key;
	char *topic;
	int32 partition;
	int64 first_offset;
	int64 last_offset;
	bool compressed;
	bool parquet;		/* its key's extension is .parquet */
	bool single_record; /* an object of the old Python pipeline: one JSON */
	char *etag;			/* as recorded; "" when the manifest has none */
	int64 time;			/* unix seconds its key names (object_key.c); -1: none */
} ObjectRef;

/* what the COPY data source callback reads from */
static StringInfo copy_source = NULL;
static int copy_pos = 0;

static int
copy_from_buffer(void *outbuf, int minread, int maxread)
{
	int n = Min(maxread, copy_source->len - copy_pos);

	memcpy(outbuf, copy_source->data + copy_pos, n);
	copy_pos += n;
	return n;
}

/*
 * Run a statement the loaders run once per object through a plan prepared
 * on first use and kept for the backend's life (*plan), so it is parsed
 * and planned once, not once per object.  As SPI_execute_with_args.
 */
int
ss_bronze_loader_execute_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *args,
							  const char *nulls, bool read_only)
{
	if (*plan == NULL)
	{
		SPIPlanPtr p = SPI_prepare(sql, nargs, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: could not prepare \"%s\": %s", sql,
								   SPI_result_code_string(SPI_result))));
		*plan = p;
	}
	return SPI_execute_plan(*plan, args, nulls, read_only, 0);
}

/* (Re)start a binary COPY stream: signature, flags, no header extension. */
static void
begin_copy_stream(StringInfo rows)
{
	static const char signature[11] = "PGCOPY\n\377\r\n\0";

	resetStringInfo(rows);
	appendBinaryStringInfo(rows, signature, sizeof(signature));
	pq_sendint32(rows, 0);
	pq_sendint32(rows, 0);
}

/*
 * COPY the binary tuples in `rows` (a stream begun by begin_copy_stream)
 * into stocks_stream.<table>, through CopyFrom: partition routing,
 * multi-insert, indexes and constraints as for a COPY statement.
 */
static uint64
copy_rows(const char *table, StringInfo rows, List *columns)
{
	Oid relid = get_relname_relid(table, get_namespace_oid("stocks_stream", false));
	Relation rel;
	ParseState *pstate;
	CopyFromState cstate;
	List *options = list_make1(makeDefElem("format", (Node *) makeString("binary"), -1));
	uint64 n;

	rel = table_open(relid, RowExclusiveLock);
	pstate = make_parsestate(NULL);
	/* CopyFrom builds its executor state from the range table, as DoCopy does */
	ss_pg_compat_require_perms(
		addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false),
		ACL_INSERT);
	pq_sendint16(rows, -1); /* end of the stream */
	copy_source = rows;
	copy_pos = 0;
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_from_buffer, columns, options);
	n = CopyFrom(cstate);
	EndCopyFrom(cstate);
	free_parsestate(pstate);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	return n;
}

/*
 * Gunzip `in` into `out` (reset first), within stocks_stream.max_object_size;
 * ERROR on a corrupt, truncated or oversized object.
 */
void
ss_bronze_loader_gunzip(StringInfo in, StringInfo out, const char *key)
{
	char reason[200];

	if (!ss_bronze_gzip_inflate(in->data, in->len, out, ss_settings_max_object_bytes(), reason,
								sizeof(reason)))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("stocks_stream: object \"%s\" %s", key, reason),
						errhint("It stays in the manifest, marked failed; see "
								"stocks_stream.max_object_size.")));
}

/*
 * The next line of an object's text at *p (before end), its length in
 * *len; *p moves past it and its newline.  Line N is offset first_offset + N.
 */
static char *
next_line(char **p, char *end, size_t *len)
{
	char *line = *p;
	char *nl = memchr(line, '\n', end - line);

	*len = (nl ? nl : end) - line;
	*p = nl ? nl + 1 : end;
	return line;
}

/*
 * Offsets of [first, last] that silver already holds for topic/partition;
 * with `range` ([0], [1]: unix ms), only rows whose event time lies in it.
 * Silver is partitioned by event time, so a bounded probe reads the
 * partitions of those days only, an unbounded one every daily partition
 * (12 ms against 0.3 ms with a year of them).
 */
static bool *
loaded_offsets(const ObjectRef *o, const int64 *range)
{
	int64 span = o->last_offset - o->first_offset + 1;
	bool *seen = palloc0(sizeof(bool) * span);
	static SPIPlanPtr any_time = NULL;
	static SPIPlanPtr in_range = NULL;
	Oid types[6] = {TEXTOID, INT4OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum args[6] = {CStringGetTextDatum(o->topic),
					 Int32GetDatum(o->partition),
					 Int64GetDatum(o->first_offset),
					 Int64GetDatum(o->last_offset),
					 range ? TimestampTzGetDatum(ss_clock_from_unix_ms(range[0])) : 0,
					 range ? TimestampTzGetDatum(ss_clock_from_unix_ms(range[1])) : 0};
	int spi;

	if (range == NULL)
		spi = ss_bronze_loader_execute_kept(&any_time,
											"SELECT source_offset FROM stocks_stream.quotes "
											" WHERE source_topic = $1 AND source_partition = $2 "
											"   AND source_offset BETWEEN $3 AND $4 "
											"UNION ALL "
											"SELECT source_offset FROM stocks_stream.trades "
											" WHERE source_topic = $1 AND source_partition = $2 "
											"   AND source_offset BETWEEN $3 AND $4",
											4, types, args, NULL, false);
	else
		spi = ss_bronze_loader_execute_kept(&in_range,
											"SELECT source_offset FROM stocks_stream.quotes "
											" WHERE source_topic = $1 AND source_partition = $2 "
											"   AND source_offset BETWEEN $3 AND $4 "
											"   AND quote_time BETWEEN $5 AND $6 "
											"UNION ALL "
											"SELECT source_offset FROM stocks_stream.trades "
											" WHERE source_topic = $1 AND source_partition = $2 "
											"   AND source_offset BETWEEN $3 AND $4 "
											"   AND trade_time BETWEEN $5 AND $6",
											6, types, args, NULL, false);
	if (spi != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read silver offsets")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		int64 off =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		seen[off - o->first_offset] = true;
	}
	return seen;
}

/*
 * The event times, [0] earliest and [1] latest (unix ms), of the lines of
 * an object of at most PROBE_RANGE_MAX_LINES lines, checked for it without
 * being rendered; false when a line is invalid (a line silver holds was
 * valid when loaded, but not always by today's rules, so where silver
 * holds it must be looked up at any time) or the object is larger (its
 * load costs far more than an unbounded probe, and a second pass over it
 * would not pay).
 */
#define PROBE_RANGE_MAX_LINES 10000

static bool
event_time_range(const ObjectRef *o, StringInfo text, int64 *range)
{
	char reason[200];
	char *p, *end;
	int64 line_no = 0;

	if (o->last_offset - o->first_offset >= PROBE_RANGE_MAX_LINES)
		return false;
	range[0] = PG_INT64_MAX;
	range[1] = PG_INT64_MIN;
	for (p = text->data, end = text->data + text->len; p < end; line_no++)
	{
		size_t len;
		char *line = next_line(&p, end, &len);
		BronzeSource src = {o->topic, o->partition, o->first_offset + line_no};
		BronzeEvent event;

		if (ss_bronze_record_check_line(line, len, &src, NULL, NULL, &event, reason,
										sizeof(reason)) == BRONZE_INVALID)
			return false;
		range[0] = Min(range[0], event.time_ms);
		range[1] = Max(range[1], event.time_ms);
	}
	return line_no > 0;
}

/*
 * Keep a refused line in the quarantine with its reason: at most
 * stocks_stream.quarantine_raw_max bytes of it; of a longer one the
 * reason also gives its length and SHA-256.
 */
static void
quarantine(const ObjectRef *o, int64 line_no, const char *line, size_t len, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid types[6] = {TEXTOID, TEXTOID, INT8OID, BYTEAOID, TEXTOID, INT4OID};
	bytea *raw = palloc(VARHDRSZ + len);
	Datum args[6];

	SET_VARSIZE(raw, VARHDRSZ + len);
	memcpy(VARDATA(raw), line, len);
	args[0] = CStringGetTextDatum(o->bucket);
	args[1] = CStringGetTextDatum(o->key);
	args[2] = Int64GetDatum(line_no);
	args[3] = PointerGetDatum(raw);
	args[4] = CStringGetTextDatum(reason);
	args[5] = Int32GetDatum(ss_settings_quarantine_raw_max);
	if (ss_bronze_loader_execute_kept(
			&plan,
			"INSERT INTO stocks_stream.quarantine "
			"(bucket, object_key, line_number, raw, reason) "
			"VALUES ($1, $2, $3, substring($4 FROM 1 FOR $6), "
			"        CASE WHEN length($4) <= $6 THEN $5 "
			"             ELSE format('%s (a line of %s bytes, SHA-256 %s: its first %s kept)', "
			"                         $5, length($4), encode(sha256($4), 'hex'), $6) END) "
			"ON CONFLICT (bucket, object_key, line_number) DO NOTHING",
			6, types, args, NULL, false) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not write to quarantine")));
}

static void
mark_object(const ObjectRef *o, const char *error)
{
	static SPIPlanPtr plan = NULL;
	Oid types[2] = {INT8OID, TEXTOID};
	Datum args[2] = {Int64GetDatum(o->object_id), error ? CStringGetTextDatum(error) : (Datum) 0};
	char nulls[2] = {' ', error ? ' ' : 'n'};

	/* loaded (no error) or failed (with one), in one statement */
	if (ss_bronze_loader_execute_kept(
			&plan,
			"UPDATE stocks_stream.manifest "
			"   SET loaded_at = CASE WHEN $2 IS NULL THEN now() END, load_error = $2, "
			"       load_attempts = load_attempts + 1, last_load_attempt = now() "
			" WHERE object_id = $1",
			2, types, args, nulls, false) != SPI_OK_UPDATE)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not update the manifest")));
}

/* A minute of one symbol that loaded rows touched. */
typedef struct DirtyMinute
{
	char symbol[SYMBOL_MAX_LEN + 1]; /* zero-padded: the key is hashed as bytes */
	int64 minute_ms;				 /* unix milliseconds */
} DirtyMinute;

static HTAB *
new_dirty_minutes(void)
{
	HASHCTL ctl;

	ctl.keysize = sizeof(DirtyMinute);
	ctl.entrysize = sizeof(DirtyMinute);
	ctl.hcxt = CurrentMemoryContext;
	return hash_create("stocks_stream dirty minutes", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Note the UTC day and the symbol's minute of a row that will be loaded. */
static List *
note_event(List *days, HTAB *minutes, const BronzeEvent *event)
{
	DirtyMinute key;

	memset(&key, 0, sizeof(key));
	strlcpy(key.symbol, event->symbol, sizeof(key.symbol));
	key.minute_ms = event->time_ms - event->time_ms % 60000;
	hash_search(minutes, &key, HASH_ENTER, NULL);
	return list_append_unique_int(days, (int) (event->time_ms / 86400000));
}

/* Create the daily partitions of quotes and trades the rows will need. */
static void
ensure_partitions(List *days)
{
	static SPIPlanPtr plan = NULL;
	ListCell *lc;

	foreach (lc, days)
	{
		Oid types[1] = {INT4OID};
		Datum args[1] = {Int32GetDatum(lfirst_int(lc))};

		if (ss_bronze_loader_execute_kept(
				&plan, "SELECT stocks_stream.ensure_day_partition(date '1970-01-01' + $1)", 1,
				types, args, NULL, false) != SPI_OK_SELECT)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: could not create a daily partition")));
	}
}

/*
 * Record the minutes this object's rows touched, for refresh_gold(), in
 * the transaction that loads them.
 */
static void
mark_gold_dirty(HTAB *minutes)
{
	static SPIPlanPtr plan = NULL;
	long n = hash_get_num_entries(minutes);
	Datum *symbols, *times;
	HASH_SEQ_STATUS seq;
	DirtyMinute *m;
	int i = 0;
	Oid types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum args[2];

	if (n == 0)
		return;
	symbols = palloc(sizeof(Datum) * n);
	times = palloc(sizeof(Datum) * n);
	hash_seq_init(&seq, minutes);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		symbols[i] = CStringGetTextDatum(m->symbol);
		times[i++] = Int64GetDatum(m->minute_ms);
	}
	args[0] = PointerGetDatum(construct_array(symbols, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(
		construct_array(times, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (ss_bronze_loader_execute_kept(
			&plan,
			"INSERT INTO stocks_stream.gold_dirty (symbol, minute) "
			"SELECT s, to_timestamp(m / 1000) FROM unnest($1, $2) AS u(s, m) "
			"ON CONFLICT DO NOTHING",
			2, types, args, NULL, false) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not record the minutes to refresh")));
}

/*
 * Buffers kept from one object to the next: allocated once per call, so
 * objects of similar size are read and rendered without growing (and
 * copying, and faulting in) a buffer each time.
 */
typedef struct LoadBuffers
{
	StringInfoData body;   /* the object as stored */
	StringInfoData plain;  /* gunzipped */
	StringInfoData quotes; /* binary COPY streams */
	StringInfoData trades;
} LoadBuffers;

/* What the lines of the objects of one step add up to, before they are written. */
typedef struct LineTally
{
	List *days;
	HTAB *minutes;
	int64 nquotes;
	int64 ntrades;
} LineTally;

/* One (possibly pretty-printed) JSON document of the old pipeline: make it one line. */
static void
flatten(StringInfo text)
{
	for (int i = 0; i < text->len; i++)
		if (text->data[i] == '\n' || text->data[i] == '\r')
			text->data[i] = ' ';
}

/*
 * Is a valid line's event time within stocks_stream.event_time_window of
 * the time its object's key names (its first Kafka record's timestamp)?
 * Without the bound anyone who can write to the topic could make silver
 * partitions of any day since min_event_year.
 */
static bool
in_time_window(const ObjectRef *o, const BronzeEvent *event, char *reason, size_t reason_len)
{
	int64 window_ms = (int64) ss_settings_event_time_window_min * 60000;
	int64 from_ms, to_ms;

	if (window_ms == 0 || o->time < 0)
		return true;
	/* an object's records were written within the hour its key names, or soon after */
	from_ms = o->time * 1000 - window_ms;
	to_ms = (o->time + 3600) * 1000 + window_ms;
	if (event->time_ms >= from_ms && event->time_ms <= to_ms)
		return true;
	snprintf(reason, reason_len,
			 "event time is more than stocks_stream.event_time_window (%d min) from the time "
			 "the object was written",
			 ss_settings_event_time_window_min);
	return false;
}

/*
 * Check each line of an object's text (line N is offset first_offset + N;
 * seen[N]: silver holds it already): good ones are appended to the COPY
 * streams, bad ones quarantined.
 */
static void
scan_lines(const ObjectRef *o, StringInfo text, const bool *seen, LoadBuffers *buf,
		   LoadCounts *counts, LineTally *ss)
{
	char reason[200];
	int64 line_no = 0;
	char *p, *end;

	for (p = text->data, end = text->data + text->len; p < end; line_no++)
	{
		size_t len;
		char *line = next_line(&p, end, &len);
		BronzeSource src = {o->topic, o->partition, o->first_offset + line_no};
		int64 idx = line_no;

		if (idx > o->last_offset - o->first_offset)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stocks_stream: object \"%s\" has more lines than its manifest row's "
							"offsets %lld..%lld",
							o->key, (long long) o->first_offset, (long long) o->last_offset)));
		if (seen[idx])
			counts->rows_duplicate++;
		else
		{
			BronzeKind kind;
			BronzeEvent event;
			int quotes_len = buf->quotes.len;
			int trades_len = buf->trades.len;

			kind = ss_bronze_record_check_line(line, len, &src, &buf->quotes, &buf->trades, &event,
											   reason, sizeof(reason));
			if (kind != BRONZE_INVALID && !in_time_window(o, &event, reason, sizeof(reason)))
			{
				/* drop the tuple it wrote */
				buf->quotes.len = quotes_len;
				buf->trades.len = trades_len;
				kind = BRONZE_INVALID;
			}
			if (kind != BRONZE_INVALID)
				ss->days = note_event(ss->days, ss->minutes, &event);
			if (kind == BRONZE_QUOTE)
				ss->nquotes++;
			else if (kind == BRONZE_TRADE)
				ss->ntrades++;
			else
			{
				quarantine(o, line_no, line, len, reason);
				counts->rows_quarantined++;
			}
		}
	}
}

/* Write what the scanned lines add up to: partitions, rows, minutes for gold. */
static void
write_rows(LineTally *ss, LoadBuffers *buf, LoadCounts *counts, List *quote_cols, List *trade_cols)
{
	ensure_partitions(ss->days);
	if (ss->nquotes > 0)
		counts->rows_loaded += copy_rows("quotes", &buf->quotes, quote_cols);
	if (ss->ntrades > 0)
		counts->rows_loaded += copy_rows("trades", &buf->trades, trade_cols);
	mark_gold_dirty(ss->minutes);
}

/* Load one object whose body is in buf->body; ERROR (caught by the caller) when it cannot. */
static void
load_object(const ObjectRef *o, LoadCounts *counts, List *quote_cols, List *trade_cols,
			LoadBuffers *buf)
{
	StringInfo text = &buf->body;
	LineTally ss = {NIL, new_dirty_minutes(), 0, 0};
	int64 range[2];

	if (o->parquet)
	{
		ss_bronze_parquet_lines(&buf->body, &buf->plain, o->key, o->partition, o->first_offset,
								o->last_offset);
		text = &buf->plain;
	}
	else if (o->compressed)
	{
		ss_bronze_loader_gunzip(&buf->body, &buf->plain, o->key);
		text = &buf->plain;
	}
	if (o->single_record)
		flatten(text);
	begin_copy_stream(&buf->quotes);
	begin_copy_stream(&buf->trades);
	scan_lines(o, text, loaded_offsets(o, event_time_range(o, text, range) ? range : NULL), buf,
			   counts, &ss);
	write_rows(&ss, buf, counts, quote_cols, trade_cols);
	mark_object(o, NULL);
	counts->objects_loaded++;
}

/*
 * Which of a group of one-record objects (each its own Kafka source, one
 * offset) silver holds already: seen[i] for objs[i].  One index probe per
 * object (a LATERAL join keeps the planner from hashing a scan of silver),
 * in the daily partition of the object's event time when its line is
 * valid (times[i]; see loaded_offsets), in every one when it is not
 * (timed[i] false).
 */
static bool *
group_loaded(ObjectRef **objs, int n, const int64 *times, const bool *timed)
{
	static SPIPlanPtr plan = NULL;
	bool *seen = palloc0(sizeof(bool) * n);
	Datum *topics = palloc(sizeof(Datum) * n);
	Datum *partitions = palloc(sizeof(Datum) * n);
	Datum *offsets = palloc(sizeof(Datum) * n);
	Datum *stamps = palloc(sizeof(Datum) * n);
	bool *nulls = palloc(sizeof(bool) * n);
	int dims[1] = {n};
	int lbs[1] = {1};
	Oid types[4] = {TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum args[4];

	for (int i = 0; i < n; i++)
	{
		topics[i] = CStringGetTextDatum(objs[i]->topic);
		partitions[i] = Int32GetDatum(objs[i]->partition);
		offsets[i] = Int64GetDatum(objs[i]->first_offset);
		stamps[i] = timed[i] ? TimestampTzGetDatum(ss_clock_from_unix_ms(times[i])) : 0;
		nulls[i] = !timed[i];
	}
	args[0] = PointerGetDatum(construct_array(topics, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(partitions, n, INT4OID, 4, true, TYPALIGN_INT));
	args[2] = PointerGetDatum(
		construct_array(offsets, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_md_array(stamps, nulls, 1, dims, lbs, TIMESTAMPTZOID,
												 sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (ss_bronze_loader_execute_kept(
			&plan,
			"WITH u AS MATERIALIZED (SELECT * FROM unnest($1, $2, $3, $4) WITH ORDINALITY "
			"                                  AS u(t, p, o, ts, i)) "
			"SELECT u.i::int4 FROM u CROSS JOIN LATERAL (SELECT FROM stocks_stream.quotes s "
			"  WHERE s.source_topic = u.t AND s.source_partition = u.p AND s.source_offset = u.o "
			"    AND s.quote_time = u.ts LIMIT 1) AS q WHERE u.ts IS NOT NULL "
			"UNION ALL "
			"SELECT u.i::int4 FROM u CROSS JOIN LATERAL (SELECT FROM stocks_stream.trades s "
			"  WHERE s.source_topic = u.t AND s.source_partition = u.p AND s.source_offset = u.o "
			"    AND s.trade_time = u.ts LIMIT 1) AS t WHERE u.ts IS NOT NULL "
			"UNION ALL "
			"SELECT u.i::int4 FROM u CROSS JOIN LATERAL (SELECT FROM stocks_stream.quotes s "
			"  WHERE s.source_topic = u.t AND s.source_partition = u.p AND s.source_offset = u.o "
			"  LIMIT 1) AS q WHERE u.ts IS NULL "
			"UNION ALL "
			"SELECT u.i::int4 FROM u CROSS JOIN LATERAL (SELECT FROM stocks_stream.trades s "
			"  WHERE s.source_topic = u.t AND s.source_partition = u.p AND s.source_offset = u.o "
			"  LIMIT 1) AS t WHERE u.ts IS NULL",
			4, types, args, NULL, false) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read silver offsets")));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;

		seen[DatumGetInt32(
				 SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)) -
			 1] = true;
	}
	return seen;
}

/*
 * Load a group of the old pipeline's one-quote objects as one: one look
 * at silver, one COPY, one update of gold's minutes, where each object
 * alone would take a statement of each.  The lines are checked as
 * load_object checks them, so what is loaded, counted and quarantined is
 * the same.
 */
static void
load_group(ObjectRef **objs, StringInfo bodies, int n, LoadCounts *counts, List *quote_cols,
		   List *trade_cols, LoadBuffers *buf)
{
	LineTally ss = {NIL, new_dirty_minutes(), 0, 0};
	int64 *times = palloc(sizeof(int64) * n);
	bool *timed = palloc(sizeof(bool) * n);
	bool *seen;

	for (int i = 0; i < n; i++)
	{
		int64 range[2];

		flatten(&bodies[i]);
		timed[i] = event_time_range(objs[i], &bodies[i], range);
		times[i] = range[0];
	}
	seen = group_loaded(objs, n, times, timed);
	begin_copy_stream(&buf->quotes);
	begin_copy_stream(&buf->trades);
	for (int i = 0; i < n; i++)
		scan_lines(objs[i], &bodies[i], &seen[i], buf, counts, &ss);
	write_rows(&ss, buf, counts, quote_cols, trade_cols);
	for (int i = 0; i < n; i++)
		mark_object(objs[i], NULL);
	counts->objects_loaded += n;
}

/*
 * Lock the manifest rows not loaded yet: of one pipeline (or all), or, for
 * load_bronze_prefix(), under a bucket and key prefix, and there after the
 * key `after` and up to the key `upto` (in S3's order, bytes; NULL: no
 * bound).  Allocated in the current memory context.
 */
List *
ss_bronze_loader_pending_objects(text *pipeline, int max_objects, const char *bucket,
								 const char *prefix, const char *after, const char *upto)
{
	Oid types[8] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, INT4OID};
	Datum args[8] = {pipeline ? PointerGetDatum(pipeline) : (Datum) 0,
					 Int32GetDatum(max_objects),
					 bucket ? CStringGetTextDatum(bucket) : (Datum) 0,
					 prefix ? CStringGetTextDatum(prefix) : (Datum) 0,
					 after ? CStringGetTextDatum(after) : (Datum) 0,
					 upto ? CStringGetTextDatum(upto) : (Datum) 0,
					 Float8GetDatum(ss_settings_load_retry_backoff_ms / 1000.0),
					 Int32GetDatum(ss_settings_load_max_attempts)};
	char nulls[8] = {pipeline ? ' ' : 'n',
					 max_objects > 0 ? ' ' : 'n',
					 bucket ? ' ' : 'n',
					 prefix ? ' ' : 'n',
					 after ? ' ' : 'n',
					 upto ? ' ' : 'n',
					 ' ',
					 ' '};
	List *objs = NIL;

	/*
	 * An object whose last load failed waits stocks_stream.load_retry_backoff,
	 * doubled for each failed attempt (up to a day), and is left alone after
	 * stocks_stream.load_max_attempts (counted in api.pipeline_health);
	 * retry_failed_objects() sets load_attempts to 0: tried at once.
	 */
	if (SPI_execute_with_args(
			"SELECT object_id, bucket, object_key, topic, partition, first_offset, "
			"       last_offset, compressed, pipeline = 'load_bronze_prefix', "
			"       coalesce(etag, '') "
			"  FROM stocks_stream.manifest "
			" WHERE loaded_at IS NULL AND ($1 IS NULL OR pipeline = $1) "
			"   AND ($3 IS NULL OR (bucket = $3 AND starts_with(object_key, $4))) "
			"   AND ($5 IS NULL OR object_key COLLATE \"C\" > $5) "
			"   AND ($6 IS NULL OR object_key COLLATE \"C\" <= $6) "
			"   AND (load_error IS NULL OR load_attempts = 0 OR "
			"        (load_attempts < $8 AND last_load_attempt + "
			"        make_interval(secs => least($7 * 2 ^ least(load_attempts - 1, 30), 86400)) "
			"        <= now())) "
			" ORDER BY object_id LIMIT $2 FOR UPDATE SKIP LOCKED",
			8, types, args, nulls, false, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read the manifest")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple t = SPI_tuptable->vals[i];
		TupleDesc d = SPI_tuptable->tupdesc;
		ObjectRef *o = palloc(sizeof(ObjectRef));
		ObjectKey key;
		ObjectKeyKind kind;
		bool isnull;

		o->object_id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		o->bucket = SPI_getvalue(t, d, 2);
		o->key = SPI_getvalue(t, d, 3);
		o->topic = SPI_getvalue(t, d, 4);
		o->partition = DatumGetInt32(SPI_getbinval(t, d, 5, &isnull));
		o->first_offset = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
		o->last_offset = DatumGetInt64(SPI_getbinval(t, d, 7, &isnull));
		o->compressed = DatumGetBool(SPI_getbinval(t, d, 8, &isnull));
		kind = ss_object_key_parse(o->key, &key);
		o->single_record =
			DatumGetBool(SPI_getbinval(t, d, 9, &isnull)) && kind == OBJECT_KEY_PYTHON_QUOTE;
		o->etag = SPI_getvalue(t, d, 10);
		o->time = kind != OBJECT_KEY_OTHER ? key.time : -1;
		o->parquet = kind == OBJECT_KEY_ARCHIVE && key.format == OBJECT_FORMAT_PARQUET;
		objs = lappend(objs, o);
	}
	return objs;
}

/*
 * Run `step` on `arg` in a subtransaction and a memory context of its own,
 * freed afterwards (an object's text is gone before the next is read); on
 * error roll it back, keep the message in `error` and return false.
 */
bool
ss_bronze_loader_in_subtransaction(void (*step)(void *arg), void *arg, char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext stepcxt =
		AllocSetContextCreate(oldcxt, "stocks_stream load step", ALLOCSET_DEFAULT_SIZES);
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(stepcxt);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		*error = pstrdup(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(stepcxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* how many of the old pipeline's one-quote objects load as one group, at most */
#define LOAD_GROUP_MAX 64
/* and how many bytes of them */
#define LOAD_GROUP_BYTES (1024 * 1024)

typedef struct LoadStep
{
	ObjectRef *object; /* one object, its body in buffers.body */
	ObjectRef **group; /* or a group of one-quote objects */
	StringInfo bodies; /* with their bodies */
	int ngroup;
	LoadCounts counts;
	List *quote_cols;
	List *trade_cols;
	LoadBuffers buffers;
} LoadStep;

static void
load_step(void *arg)
{
	LoadStep *st = arg;

	if (st->group != NULL)
		load_group(st->group, st->bodies, st->ngroup, &st->counts, st->quote_cols, st->trade_cols,
				   &st->buffers);
	else
		load_object(st->object, &st->counts, st->quote_cols, st->trade_cols, &st->buffers);
}

static void
add_counts(LoadCounts *to, const LoadCounts *from)
{
	to->objects_loaded += from->objects_loaded;
	to->rows_loaded += from->rows_loaded;
	to->rows_duplicate += from->rows_duplicate;
	to->rows_quarantined += from->rows_quarantined;
	to->objects_failed += from->objects_failed;
}

/* An object that could not be loaded stays pending, marked with the error. */
static void
fail_object(const ObjectRef *o, const char *error, LoadCounts *counts)
{
	mark_object(o, error);
	counts->objects_failed++;
	ereport(WARNING, (errmsg("stocks_stream: could not load object \"%s\": %s", o->key, error),
					  errhint("It stays in the manifest and is retried after "
							  "stocks_stream.load_retry_backoff, at most "
							  "stocks_stream.load_max_attempts times.")));
}

/* Load one object whose body is in st->buffers.body, in a subtransaction. */
static void
load_one(LoadStep *st, ObjectRef *o, LoadCounts *counts)
{
	char *error;

	st->object = o;
	st->group = NULL;
	memset(&st->counts, 0, sizeof(st->counts));
	if (ss_bronze_loader_in_subtransaction(load_step, st, &error))
		add_counts(counts, &st->counts);
	else
		fail_object(o, error, counts);
}

/*
 * Load a group of one-quote objects (bodies fetched) in one
 * subtransaction; if that fails, each alone, so a failure stays the
 * object's own.
 */
static void
load_one_group(LoadStep *st, ObjectRef **objs, StringInfo bodies, int n, LoadCounts *counts,
			   LoadProgress *progress)
{
	char *error;

	st->group = objs;
	st->bodies = bodies;
	st->ngroup = n;
	memset(&st->counts, 0, sizeof(st->counts));
	if (n > 1 && ss_bronze_loader_in_subtransaction(load_step, st, &error))
	{
		add_counts(counts, &st->counts);
		for (int i = 0; i < n; i++)
			ss_load_progress_step(progress, counts, objs[i]->key);
		return;
	}
	for (int i = 0; i < n; i++)
	{
		resetStringInfo(&st->buffers.body);
		appendBinaryStringInfo(&st->buffers.body, bodies[i].data, bodies[i].len);
		load_one(st, objs[i], counts);
		ss_load_progress_step(progress, counts, objs[i]->key);
	}
}

/*
 * Load each object, in the list's order, in a subtransaction of its own; a
 * failed one is marked.  Consecutive objects of the old pipeline (one
 * quote each) load in groups of up to LOAD_GROUP_MAX, each group in one
 * subtransaction, and each object alone should its group fail.  Their GETs
 * travel stocks_stream.s3_gets_in_flight at a time (s3_fetch.c).  Progress
 * NOTICEs count them into `progress` (begun by the caller).
 */
void
ss_bronze_loader_load_objects(List *objects, LoadCounts *counts, LoadProgress *progress)
{
	int n = list_length(objects);
	LoadStep st = {0};
	S3Fetch *fetch;
	ObjectRef **group = palloc(sizeof(ObjectRef *) * LOAD_GROUP_MAX);
	StringInfo bodies = palloc0(sizeof(StringInfoData) * LOAD_GROUP_MAX);
	int ngroup = 0;
	Size group_bytes = 0;

	if (n == 0)
		return;
	st.quote_cols = ss_bronze_record_copy_columns(BRONZE_QUOTE);
	st.trade_cols = ss_bronze_record_copy_columns(BRONZE_TRADE);
	initStringInfo(&st.buffers.body);
	initStringInfo(&st.buffers.plain);
	initStringInfo(&st.buffers.quotes);
	initStringInfo(&st.buffers.trades);
	for (int i = 0; i < LOAD_GROUP_MAX; i++)
		initStringInfo(&bodies[i]);
	fetch =
		ss_s3_fetch_begin(ss_settings_s3_gets_in_flight, (Size) ss_settings_load_buffer_kb * 1024);
	for (int i = 0; i < n; i++)
	{
		ObjectRef *o = list_nth(objects, i);

		ss_s3_fetch_add(fetch, o->bucket, o->key);
	}
	progress->total += n;
	for (int i = 0; i < n; i++)
	{
		ObjectRef *o = list_nth(objects, i);
		ObjectRef *next = i + 1 < n ? list_nth(objects, i + 1) : NULL;
		StringInfo body = o->single_record ? &bodies[ngroup] : &st.buffers.body;
		S3Result res = ss_s3_fetch_next(fetch, body);

		if (res.ok && o->etag[0] != '\0' && res.etag[0] != '\0' && strcmp(o->etag, res.etag) != 0)
		{
			res.ok = false;
			snprintf(res.error, sizeof(res.error),
					 "the object was replaced after it was recorded (ETag \"%s\", recorded "
					 "\"%s\"); it is not loaded",
					 res.etag, o->etag);
		}
		if (!res.ok)
		{
			fail_object(o, res.error, counts);
			ss_load_progress_step(progress, counts, o->key);
		}
		else if (!o->single_record)
		{
			load_one(&st, o, counts);
			ss_load_progress_step(progress, counts, o->key);
		}
		else
		{
			group[ngroup++] = o;
			group_bytes += body->len;
		}
		/* a group ends when it is full or the next object cannot join it */
		if (ngroup > 0 && (ngroup == LOAD_GROUP_MAX || group_bytes >= LOAD_GROUP_BYTES ||
						   next == NULL || !next->single_record))
		{
			load_one_group(&st, group, bodies, ngroup, counts, progress);
			for (int j = 0; j < ngroup; j++)
				if (bodies[j].maxlen > 64 * 1024)
				{
					pfree(bodies[j].data);
					initStringInfo(&bodies[j]);
				}
			ngroup = 0;
			group_bytes = 0;
		}
	}
	ss_s3_fetch_end(fetch);
}

Datum
ss_bronze_loader_counts_row(FunctionCallInfo fcinfo, const LoadCounts *counts)
{
	TupleDesc tupdesc;
	Datum values[5];
	bool nulls[5] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream.load_bronze: function must return a row")));
	values[0] = Int64GetDatum(counts->objects_loaded);
	values[1] = Int64GetDatum(counts->rows_loaded);
	values[2] = Int64GetDatum(counts->rows_duplicate);
	values[3] = Int64GetDatum(counts->rows_quarantined);
	values[4] = Int64GetDatum(counts->objects_failed);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

PG_FUNCTION_INFO_V1(ss_load_bronze);

Datum
ss_load_bronze(PG_FUNCTION_ARGS)
{
	text *pipeline = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	int max_objects = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	LoadCounts counts = {0};
	LoadProgress progress;

	if (!PG_ARGISNULL(1) && max_objects <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stocks_stream.load_bronze: max_objects must be greater than 0, got %d",
						max_objects),
				 errhint("Pass NULL to load every object that is not loaded yet.")));

	SPI_connect();
	if (pipeline != NULL)
	{
		Oid types[1] = {TEXTOID};
		Datum args[1] = {PointerGetDatum(pipeline)};

		SPI_execute_with_args("SELECT 1 FROM stocks_stream.pipelines WHERE name = $1", 1, types,
							  args, NULL, true, 1);
		if (SPI_processed == 0)
			ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
							errmsg("stocks_stream pipeline \"%s\" does not exist",
								   text_to_cstring(pipeline)),
							errhint("SELECT name FROM stocks_stream.pipelines lists the pipelines; "
									"NULL loads all.")));
	}
	ss_load_progress_begin(&progress, "load_bronze", "loaded", false);
	ss_bronze_loader_load_objects(
		ss_bronze_loader_pending_objects(pipeline, max_objects, NULL, NULL, NULL, NULL), &counts,
		&progress);
	SPI_finish();
	PG_RETURN_DATUM(ss_bronze_loader_counts_row(fcinfo, &counts));
}

PG_FUNCTION_INFO_V1(ss_check_bronze_line);

/* check_bronze_line(line bytea) -> (kind, reason): the loader's verdict. */
Datum
ss_check_bronze_line(PG_FUNCTION_ARGS)
{
	bytea *line = PG_GETARG_BYTEA_PP(0);
	char reason[200] = "";
	BronzeSource src = {"check", 0, 0};
	BronzeEvent event;
	BronzeKind kind = ss_bronze_record_check_line(VARDATA_ANY(line), VARSIZE_ANY_EXHDR(line), &src,
												  NULL, NULL, &event, reason, sizeof(reason));
	TupleDesc tupdesc;
	Datum values[2];
	bool nulls[2] = {false, kind != BRONZE_INVALID};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream.check_bronze_line must return a row")));
	values[0] = CStringGetTextDatum(kind == BRONZE_QUOTE   ? "quote"
									: kind == BRONZE_TRADE ? "trade"
														   : "invalid");
	values[1] = CStringGetTextDatum(reason);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
