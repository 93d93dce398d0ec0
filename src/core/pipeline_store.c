/*
 * pipeline_store.c
 *	  The background workers' access, over SPI, to what the extension's
 *	  tables hold about them: pipelines, sources, stored offsets and the
 *	  manifest (pg_cron's job_metadata.c plays this part there).
 *
 * Each function runs in a transaction of its own and copies its results
 * into the caller's memory context before committing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "core/pipeline_store.h"

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR), errmsg("stocks_stream: SPI_connect failed")));
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Commit, and allocate in the caller's context again (commit leaves TopMemoryContext current). */
static void
end_tx(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static char *
text_column(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt)
{
	bool isnull;
	Datum d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static Datum
column(HeapTuple tup, TupleDesc desc, int col)
{
	bool isnull;
	Datum d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		ereport(
			ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("stocks_stream: unexpected NULL in column %d of a stocks_stream table", col)));
	return d;
}

PipelineConfig *
ss_pipeline_store_load_pipeline(int pipeline_id)
{
	MemoryContext caller = CurrentMemoryContext;
	PipelineConfig *cfg = NULL;
	Oid argtypes[1] = {INT4OID};
	Datum args[1] = {Int32GetDatum(pipeline_id)};

	begin_tx("stocks_stream: load pipeline");
	if (SPI_execute_with_args(
			"SELECT name, topic, bucket, key_prefix, batch_max_messages, "
			"batch_max_bytes, batch_max_age_ms, gzip, workers, generation, running, realtime, "
			/* format came in 0.5.0: read so that an install not yet updated has none */
			"coalesce(to_jsonb(p) ->> 'format' = 'parquet', false) "
			"FROM stocks_stream.pipelines p WHERE pipeline_id = $1",
			1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.pipelines")));
	if (SPI_processed == 1)
	{
		HeapTuple t = SPI_tuptable->vals[0];
		TupleDesc d = SPI_tuptable->tupdesc;

		cfg = MemoryContextAllocZero(caller, sizeof(PipelineConfig));
		cfg->pipeline_id = pipeline_id;
		cfg->name = text_column(t, d, 1, caller);
		cfg->topic = text_column(t, d, 2, caller);
		cfg->bucket = text_column(t, d, 3, caller);
		cfg->key_prefix = text_column(t, d, 4, caller);
		cfg->batch_max_messages = DatumGetInt32(column(t, d, 5));
		cfg->batch_max_bytes = DatumGetInt64(column(t, d, 6));
		cfg->batch_max_age_ms = DatumGetInt32(column(t, d, 7));
		cfg->gzip = DatumGetBool(column(t, d, 8));
		cfg->workers = DatumGetInt32(column(t, d, 9));
		cfg->generation = DatumGetInt32(column(t, d, 10));
		cfg->running = DatumGetBool(column(t, d, 11));
		cfg->realtime = DatumGetBool(column(t, d, 12));
		cfg->parquet = DatumGetBool(column(t, d, 13));
		cfg->key_topic = cfg->topic;
	}
	end_tx(caller);
	return cfg;
}

int
ss_pipeline_store_load_offsets(int pipeline_id, const char *topic, StoredOffset **offsets)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid argtypes[2] = {INT4OID, TEXTOID};
	Datum args[2] = {Int32GetDatum(pipeline_id), CStringGetTextDatum(topic)};
	int n;

	begin_tx("stocks_stream: load offsets");
	if (SPI_execute_with_args("SELECT partition, next_offset FROM stocks_stream.offsets "
							  "WHERE pipeline_id = $1 AND topic = $2",
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.offsets")));
	n = (int) SPI_processed;
	*offsets = MemoryContextAlloc(caller, sizeof(StoredOffset) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple t = SPI_tuptable->vals[i];
		TupleDesc d = SPI_tuptable->tupdesc;

		(*offsets)[i].partition = DatumGetInt32(column(t, d, 1));
		(*offsets)[i].next_offset = DatumGetInt64(column(t, d, 2));
	}
	end_tx(caller);
	return n;
}

/*
 * Move a partition's stored offset to `next`, inside the caller's
 * transaction, only forward from `from` (next_offset <= from): false when
 * another consumer has moved it past that, and nothing is written.
 */
static bool
advance_offset(const PipelineConfig *p, int32 partition, int64 from, int64 next)
{
	Oid types[5] = {INT4OID, TEXTOID, INT4OID, INT8OID, INT8OID};
	Datum args[5] = {Int32GetDatum(p->pipeline_id), CStringGetTextDatum(p->topic),
					 Int32GetDatum(partition), Int64GetDatum(next), Int64GetDatum(from)};

	if (SPI_execute_with_args(
			"INSERT INTO stocks_stream.offsets AS o "
			"(pipeline_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4) "
			"ON CONFLICT (pipeline_id, topic, partition) DO UPDATE "
			"SET next_offset = EXCLUDED.next_offset, updated_at = now() "
			"WHERE o.next_offset <= $5",
			5, types, args, NULL, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not update stocks_stream.offsets")));
	return SPI_processed == 1;
}

/*
 * One archived object, inside the caller's transaction: advance the
 * partition's stored offset and add the manifest row.  The offset only
 * moves forward from where this batch began (next_offset <= first_offset);
 * if another consumer has moved it past that, nothing is written and false
 * is returned.  A manifest row for the same key (a retry after a crash) is
 * overwritten.
 */
static bool
record_one(const FlushRecord *r)
{
	const PipelineConfig *p = r->pipeline;
	Oid mtypes[11] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID,
					  INT8OID, INT8OID, INT8OID, TEXTOID, BOOLOID};
	Datum margs[11] = {CStringGetTextDatum(p->name),
					   CStringGetTextDatum(p->bucket),
					   CStringGetTextDatum(r->object_key),
					   CStringGetTextDatum(p->key_topic),
					   Int32GetDatum(r->partition),
					   Int64GetDatum(r->first_offset),
					   Int64GetDatum(r->last_offset),
					   Int64GetDatum(r->message_count),
					   Int64GetDatum(r->bytes),
					   CStringGetTextDatum(r->etag),
					   BoolGetDatum(p->gzip)};

	if (!advance_offset(p, r->partition, r->first_offset, r->last_offset + 1))
		return false;
	if (SPI_execute_with_args(
			"INSERT INTO stocks_stream.manifest "
			"(pipeline, bucket, object_key, topic, partition, first_offset, "
			" last_offset, message_count, bytes, etag, compressed) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
			"ON CONFLICT (bucket, object_key) DO UPDATE SET "
			"pipeline = EXCLUDED.pipeline, topic = EXCLUDED.topic, "
			"partition = EXCLUDED.partition, first_offset = EXCLUDED.first_offset, "
			"last_offset = EXCLUDED.last_offset, message_count = EXCLUDED.message_count, "
			"bytes = EXCLUDED.bytes, etag = EXCLUDED.etag, "
			"compressed = EXCLUDED.compressed, archived_at = now()",
			11, mtypes, margs, NULL, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not insert into stocks_stream.manifest")));
	return true;
}

/*
 * Record archived objects (of different partitions), in one transaction:
 * objects that reached S3 together cost one commit.  Returns the index of
 * an object whose partition another consumer advanced past its first
 * offset (that one is not written; the others are), or -1.
 */
int
ss_pipeline_store_record_flushes(const FlushRecord *recs, int n)
{
	MemoryContext caller = CurrentMemoryContext;
	int refused = -1;

	begin_tx("stocks_stream: record archived objects");
	for (int i = 0; i < n; i++)
		if (!record_one(&recs[i]) && refused < 0)
			refused = i;
	end_tx(caller);
	return refused;
}

/* Does the database's SQL have this relation (0.4.0's tables, on a database not updated yet)? */
static bool
relation_exists(const char *name)
{
	Oid types[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	bool isnull;

	if (SPI_execute_with_args("SELECT to_regclass($1) IS NOT NULL", 1, types, args, NULL, true,
							  1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not look for %s", name)));
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Skip a range of offsets, in one transaction: advance the partition's
 * stored offset past it (only from where it began, as record_one does) and
 * record the range in archive_gaps.  False, with nothing written, when
 * another consumer has moved the stored offset past the range's start.  A
 * database whose SQL predates archive_gaps gets the offset moved and a
 * WARNING in the server log instead.
 */
bool
ss_pipeline_store_record_gap(const GapRecord *g)
{
	MemoryContext caller = CurrentMemoryContext;
	const PipelineConfig *p = g->pipeline;
	Oid gtypes[7] = {TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum gargs[7] = {CStringGetTextDatum(p->name),
					  CStringGetTextDatum(p->key_topic),
					  Int32GetDatum(g->partition),
					  Int64GetDatum(g->from_offset),
					  Int64GetDatum(g->to_offset),
					  CStringGetTextDatum(g->reason),
					  CStringGetTextDatum(g->detail ? g->detail : "")};
	bool moved;

	begin_tx("stocks_stream: record skipped offsets");
	moved = advance_offset(p, g->partition, g->from_offset, g->to_offset + 1);
	if (moved && relation_exists("stocks_stream.archive_gaps"))
	{
		if (SPI_execute_with_args("INSERT INTO stocks_stream.archive_gaps "
								  "(pipeline, topic, partition, from_offset, to_offset, reason, "
								  " detail) VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''))",
								  7, gtypes, gargs, NULL, false, 0) != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("stocks_stream: could not insert into stocks_stream.archive_gaps")));
	}
	else if (moved)
		ereport(WARNING,
				(errmsg("stocks_stream pipeline \"%s\": partition %d skipped offsets %lld to %lld "
						"(%s)",
						p->name, g->partition, (long long) g->from_offset, (long long) g->to_offset,
						g->reason),
				 errhint("Run ALTER EXTENSION stocks_stream UPDATE: archive_gaps then records "
						 "such skips.")));
	end_tx(caller);
	return moved;
}

/*
 * The incarnation of its topic the pipeline archives (pipeline_topics), if
 * it has recorded one.
 */
TopicIncarnation
ss_pipeline_store_load_topic(const PipelineConfig *p)
{
	MemoryContext caller = CurrentMemoryContext;
	TopicIncarnation inc = {false, false, NULL, NULL};
	Oid types[2] = {INT4OID, TEXTOID};
	Datum args[2] = {Int32GetDatum(p->pipeline_id), CStringGetTextDatum(p->topic)};

	begin_tx("stocks_stream: load the pipeline's topic");
	inc.supported = relation_exists("stocks_stream.pipeline_topics");
	if (inc.supported)
	{
		if (SPI_execute_with_args("SELECT topic_id, key_topic FROM stocks_stream.pipeline_topics "
								  "WHERE pipeline_id = $1 AND topic = $2",
								  2, types, args, NULL, true, 1) != SPI_OK_SELECT)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: could not read stocks_stream.pipeline_topics")));
		if (SPI_processed == 1)
		{
			inc.found = true;
			inc.topic_id = text_column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, caller);
			inc.key_topic = text_column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, caller);
		}
	}
	end_tx(caller);
	return inc;
}

/*
 * Record the incarnation of its topic a pipeline archives: the first one
 * it sees, or the id of one recorded without (the client could not tell).
 * A recorded id is never replaced here: only reset_pipeline_offsets()
 * moves a pipeline to another incarnation.
 */
void
ss_pipeline_store_adopt_topic(const PipelineConfig *p, const char *topic_id, const char *key_topic)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid types[4] = {INT4OID, TEXTOID, TEXTOID, TEXTOID};
	Datum args[4] = {Int32GetDatum(p->pipeline_id), CStringGetTextDatum(p->topic),
					 topic_id ? CStringGetTextDatum(topic_id) : (Datum) 0,
					 CStringGetTextDatum(key_topic)};
	char nulls[4] = {' ', ' ', topic_id ? ' ' : 'n', ' '};

	begin_tx("stocks_stream: record the pipeline's topic");
	if (SPI_execute_with_args("INSERT INTO stocks_stream.pipeline_topics AS t "
							  "(pipeline_id, topic, topic_id, key_topic) VALUES ($1, $2, $3, $4) "
							  "ON CONFLICT (pipeline_id, topic) DO UPDATE "
							  "SET topic_id = EXCLUDED.topic_id, adopted_at = now() "
							  "WHERE t.topic_id IS NULL",
							  4, types, args, nulls, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not update stocks_stream.pipeline_topics")));
	end_tx(caller);
}

/*
 * A derived-data transaction need not wait for its commit record to reach
 * disk: if a crash loses it, what it did is done again (the manifest still
 * says "not loaded", the minutes are still dirty), exactly once.
 */
static void
commit_asynchronously(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Run stocks_stream.load_bronze(pipeline) in a transaction of its own: the
 * archive worker's real-time mode loads what it archived into silver at
 * once, under load_bronze()'s exactly-once rules.  Returns the rows loaded.
 */
int64
ss_pipeline_store_load_bronze(const PipelineConfig *p)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid types[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(p->name)};
	int64 rows = 0;
	bool isnull;

	begin_tx("stocks_stream: real-time load into silver");
	commit_asynchronously();
	if (SPI_execute_with_args("SELECT rows_loaded FROM stocks_stream.load_bronze($1)", 1, types,
							  args, NULL, false, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("stocks_stream: real-time load of pipeline \"%s\" failed", p->name)));
	if (SPI_processed == 1)
		rows =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	end_tx(caller);
	return rows;
}

/*
 * Refresh gold for the minutes of the last ten minutes, unless another
 * refresh is running (refresh_gold(since, wait => false)).
 */
GoldRefresh
ss_pipeline_store_refresh_recent_gold(void)
{
	MemoryContext caller = CurrentMemoryContext;
	GoldRefresh done = GOLD_UNAVAILABLE;
	bool isnull;

	begin_tx("stocks_stream: real-time refresh of gold");
	if (SPI_execute("SELECT to_regprocedure('stocks_stream.refresh_gold(timestamptz, boolean)') "
					"IS NOT NULL",
					true, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not look for refresh_gold(since, wait)")));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		commit_asynchronously();
		if (SPI_execute("SELECT stocks_stream.refresh_gold(now() - interval '10 minutes', false)",
						false, 0) != SPI_OK_SELECT)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: real-time refresh of gold failed")));
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		done = isnull ? GOLD_BUSY : GOLD_REFRESHED;
	}
	end_tx(caller);
	return done;
}

/*
 * The pipelines and sources that should be running, or NIL when the
 * extension is not installed in this database (yet).
 */
List *
ss_pipeline_store_wanted_workers(void)
{
	MemoryContext caller = CurrentMemoryContext;
	List *result = NIL;

	begin_tx("stocks_stream launcher: read pipelines and sources");
	if (OidIsValid(get_extension_oid("stocks_stream", true)))
	{
		if (SPI_execute("SELECT false, pipeline_id, name, workers, generation "
						"FROM stocks_stream.pipelines WHERE running "
						"UNION ALL "
						"SELECT true, source_id, name, 1, generation "
						"FROM stocks_stream.sources WHERE running ORDER BY 1, 2",
						true, 0) != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("stocks_stream: could not read stocks_stream.pipelines and .sources")));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple t = SPI_tuptable->vals[i];
			TupleDesc d = SPI_tuptable->tupdesc;
			WantedOwner *w = MemoryContextAlloc(caller, sizeof(WantedOwner));
			MemoryContext old;

			w->is_source = DatumGetBool(column(t, d, 1));
			w->id = DatumGetInt32(column(t, d, 2));
			w->name = text_column(t, d, 3, caller);
			w->workers = DatumGetInt32(column(t, d, 4));
			w->generation = DatumGetInt32(column(t, d, 5));
			old = MemoryContextSwitchTo(caller);
			result = lappend(result, w);
			MemoryContextSwitchTo(old);
		}
	}
	end_tx(caller);
	return result;
}

SourceConfig *
ss_pipeline_store_load_source(int source_id)
{
	MemoryContext caller = CurrentMemoryContext;
	SourceConfig *cfg = NULL;
	Oid argtypes[1] = {INT4OID};
	Datum args[1] = {Int32GetDatum(source_id)};

	begin_tx("stocks_stream: load source");
	if (SPI_execute_with_args("SELECT name, kind, array_to_string(symbols, ','), poll_interval_ms, "
							  "topic, generation, running, "
							  "coalesce((options->>'seed')::bigint, 42), "
							  "coalesce((options->>'rate')::float8, 10), "
							  "coalesce((options->>'quote_every')::int, 10), "
							  "coalesce((options->>'max_messages')::bigint, 0), "
							  "coalesce((options->>'calls_per_minute')::int, 60), "
							  "coalesce((options->>'skip_unchanged')::boolean, true), "
							  "cardinality(symbols) "
							  "FROM stocks_stream.sources WHERE source_id = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.sources")));
	if (SPI_processed == 1)
	{
		HeapTuple t = SPI_tuptable->vals[0];
		TupleDesc d = SPI_tuptable->tupdesc;
		char *list;
		char *save = NULL;
		int n = 0;

		cfg = MemoryContextAllocZero(caller, sizeof(SourceConfig));
		cfg->source_id = source_id;
		cfg->name = text_column(t, d, 1, caller);
		cfg->kind = text_column(t, d, 2, caller);
		list = text_column(t, d, 3, caller);
		cfg->poll_interval_ms = DatumGetInt32(column(t, d, 4));
		cfg->topic = text_column(t, d, 5, caller);
		cfg->generation = DatumGetInt32(column(t, d, 6));
		cfg->running = DatumGetBool(column(t, d, 7));
		cfg->seed = DatumGetInt64(column(t, d, 8));
		cfg->rate = DatumGetFloat8(column(t, d, 9));
		cfg->quote_every = DatumGetInt32(column(t, d, 10));
		cfg->max_messages = DatumGetInt64(column(t, d, 11));
		cfg->calls_per_minute = DatumGetInt32(column(t, d, 12));
		cfg->skip_unchanged = DatumGetBool(column(t, d, 13));
		cfg->symbols =
			MemoryContextAlloc(caller, sizeof(char *) * (DatumGetInt32(column(t, d, 14)) + 1));
		for (char *sym = strtok_r(list, ",", &save); sym; sym = strtok_r(NULL, ",", &save))
			cfg->symbols[n++] = sym;
		cfg->nsymbols = n;
	}
	end_tx(caller);
	return cfg;
}
