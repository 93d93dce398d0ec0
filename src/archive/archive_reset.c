/*
 * archive_reset.c
 *	  stocks_stream.reset_pipeline_offsets(pipeline, start): where a
 *	  pipeline's partitions start, 'earliest', 'latest' or at a time.
 *
 * It resumes a pipeline whose topic was deleted and created again (its
 * worker holds the partitions: archive_gaps.c), and it lets an operator
 * skip a backlog.  In one transaction it reads the topic from Kafka (its
 * id, its partitions' watermarks, the offsets of a time), sets each
 * partition's stored offset, records in archive_gaps every offset it
 * skips, records a new incarnation of the topic (its objects are then keyed
 * under <topic>~<topic id>: archive_topic.c) and bumps the pipeline's
 * generation, so its workers restart from the new offsets.
 *
 * Nothing is archived twice: within the same incarnation a partition never
 * starts before its stored offset (only where that offset lies beyond the
 * partition's end, a truncated log, does it start where it is told).
 *
 * Like consumer_lag.c it runs in an ordinary backend with a short-lived
 * librdkafka handle; every Kafka call is bounded.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "archive/archive_topic.h"
#include "core/clock.h"
#include "core/pg_compat.h"
#include "kafka/kafka.h"

#define KAFKA_TIMEOUT_MS 10000
#define START_HINT                                                                                 \
	"Use 'earliest', 'latest' or a timestamp such as '2026-01-02 15:04:05+00' (the first "         \
	"record at or after it)."

typedef enum StartKind
{
	START_EARLIEST,
	START_LATEST,
	START_TIME
} StartKind;

typedef struct ResetStart
{
	StartKind kind;
	int64 time_ms; /* START_TIME: Kafka's milliseconds since 1970 */
} ResetStart;

/* One partition as Kafka has it. */
typedef struct PartitionEnds
{
	int64 low;
	int64 high;
	int64 at; /* the first offset at or after the time; -1: none (start at the end) */
} PartitionEnds;

/* The pipeline, locked. */
typedef struct Target
{
	int pipeline_id;
	char *name;
	char *topic;
} Target;

static ResetStart
start_of_time(TimestampTz t)
{
	ResetStart s = {START_TIME, 0};

	if (TIMESTAMP_NOT_FINITE(t) || ss_clock_to_unix_ms(t) < 0)
		ereport(
			ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("stocks_stream.reset_pipeline_offsets: start must be a finite time after 1970"),
			 errhint(START_HINT)));
	s.time_ms = ss_clock_to_unix_ms(t);
	return s;
}

/* 'earliest', 'latest' or a timestamp's text, parsed without throwing its own error. */
static ResetStart
start_of_text(const char *text)
{
	char workbuf[MAXDATELEN + MAXDATEFIELDS];
	char *field[MAXDATEFIELDS];
	int ftype[MAXDATEFIELDS];
	int nf, dtype, tz;
	struct pg_tm tm;
	fsec_t fsec;
	TimestampTz t;
	ResetStart s = {START_EARLIEST, 0};

	if (pg_strcasecmp(text, "earliest") == 0)
		return s;
	s.kind = START_LATEST;
	if (pg_strcasecmp(text, "latest") == 0)
		return s;
	if (strlen(text) >= MAXDATELEN ||
		ParseDateTime(text, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) != 0 ||
		ss_pg_compat_decode_date_time(field, ftype, nf, &dtype, &tm, &fsec, &tz) != 0 ||
		dtype != DTK_DATE || tm2timestamp(&tm, fsec, &tz, &t) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.reset_pipeline_offsets: invalid start \"%s\"", text),
						errhint(START_HINT)));
	return start_of_time(t);
}

static ResetStart
start_argument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream.reset_pipeline_offsets: start must not be NULL"),
						errhint(START_HINT)));
	if (get_fn_expr_argtype(fcinfo->flinfo, 1) == TIMESTAMPTZOID)
		return start_of_time(PG_GETARG_TIMESTAMPTZ(1));
	return start_of_text(text_to_cstring(PG_GETARG_TEXT_PP(1)));
}

static Datum
first_column(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* Lock the pipeline's row: one reset at a time, and alter/drop wait for it. */
static Target
lock_pipeline(const char *name)
{
	Oid types[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	Target t;
	bool isnull;

	if (SPI_execute_with_args("SELECT pipeline_id, topic FROM stocks_stream.pipelines "
							  "WHERE name = $1 FOR UPDATE",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.pipelines")));
	if (SPI_processed != 1)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("stocks_stream pipeline \"%s\" does not exist", name),
						errhint("SELECT name FROM stocks_stream.pipelines lists the pipelines.")));
	t.pipeline_id = DatumGetInt32(first_column(1, &isnull));
	t.name = pstrdup(name);
	t.topic = TextDatumGetCString(first_column(2, &isnull));
	return t;
}

static void
kafka_failed(const char *what, const char *topic, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("stocks_stream: could not read %s of Kafka topic \"%s\": %s", what, topic, why),
			 errhint("Check stocks_stream.kafka_brokers and that Kafka is up; nothing was "
					 "changed.")));
}

/* The topic's partition count; a topic that does not exist is an error. */
static int
topic_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
	rd_kafka_resp_err_t topic_err = err ? err : md->topics[0].err;
	int n = topic_err ? 0 : md->topics[0].partition_cnt;

	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("stocks_stream: Kafka topic \"%s\" does not exist", topic),
						errhint("Create the topic first, or point the pipeline at another one "
								"with alter_pipeline(name, topic => ...).")));
	if (topic_err)
		kafka_failed("the metadata", topic, rd_kafka_err2str(topic_err));
	return n;
}

/* Each partition's watermarks, and with a time the first offset at or after it. */
static PartitionEnds *
partition_ends(rd_kafka_t *rk, const char *topic, int n, const ResetStart *start)
{
	PartitionEnds *ends = palloc0(sizeof(PartitionEnds) * Max(n, 1));

	for (int p = 0; p < n; p++)
	{
		rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &ends[p].low,
																   &ends[p].high, KAFKA_TIMEOUT_MS);

		if (err)
			kafka_failed("the watermarks", topic, rd_kafka_err2str(err));
		ends[p].at = -1;
	}
	if (start->kind == START_TIME && n > 0)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
		rd_kafka_resp_err_t err;

		for (int p = 0; p < n; p++)
			rd_kafka_topic_partition_list_add(list, topic, p)->offset = start->time_ms;
		err = rd_kafka_offsets_for_times(rk, list, KAFKA_TIMEOUT_MS);
		for (int i = 0; i < list->cnt && !err; i++)
			if (list->elems[i].err)
				err = list->elems[i].err;
			else
				ends[list->elems[i].partition].at = list->elems[i].offset;
		rd_kafka_topic_partition_list_destroy(list);
		if (err)
			kafka_failed("the offsets for a time", topic, rd_kafka_err2str(err));
	}
	return ends;
}

/* What Kafka says of the topic: partitions, watermarks, id. */
static PartitionEnds *
read_topic(const char *topic, const ResetStart *start, int *n, char **topic_id)
{
	rd_kafka_t *rk = ss_kafka_new(RD_KAFKA_PRODUCER, ss_kafka_conf_new(NULL, NULL));
	PartitionEnds *ends = NULL;

	PG_TRY();
	{
		*n = topic_partitions(rk, topic);
		*topic_id = ss_archive_topic_id(rk, topic, KAFKA_TIMEOUT_MS);
		ends = partition_ends(rk, topic, *n, start);
	}
	PG_FINALLY();
	{
		rd_kafka_destroy(rk);
	}
	PG_END_TRY();
	return ends;
}

/* The incarnation the pipeline archives (locked); false when it has none recorded. */
static bool
lock_incarnation(const Target *t, char **topic_id, char **key_topic)
{
	Oid types[2] = {INT4OID, TEXTOID};
	Datum args[2] = {Int32GetDatum(t->pipeline_id), CStringGetTextDatum(t->topic)};
	bool isnull;

	if (SPI_execute_with_args("SELECT topic_id, key_topic FROM stocks_stream.pipeline_topics "
							  "WHERE pipeline_id = $1 AND topic = $2 FOR UPDATE",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.pipeline_topics")));
	if (SPI_processed != 1)
		return false;
	*topic_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*key_topic = TextDatumGetCString(first_column(2, &isnull));
	return true;
}

/* Each partition's stored offset (locked), -1 where none. */
static int64 *
lock_offsets(const Target *t, int n)
{
	Oid types[2] = {INT4OID, TEXTOID};
	Datum args[2] = {Int32GetDatum(t->pipeline_id), CStringGetTextDatum(t->topic)};
	int64 *stored = palloc(sizeof(int64) * Max(n, 1));

	for (int p = 0; p < n; p++)
		stored[p] = -1;
	if (SPI_execute_with_args("SELECT partition, next_offset FROM stocks_stream.offsets "
							  "WHERE pipeline_id = $1 AND topic = $2 FOR UPDATE",
							  2, types, args, NULL, false, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.offsets")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		int32 p =
			DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (p >= 0 && p < n)
			stored[p] = DatumGetInt64(
				SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return stored;
}

static void
run(const char *query, int nargs, Oid *types, Datum *args, int expect)
{
	if (SPI_execute_with_args(query, nargs, types, args, NULL, false, 0) != expect)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not run \"%s\"", query)));
}

static void
set_offset(const Target *t, int32 partition, int64 next)
{
	Oid types[4] = {INT4OID, TEXTOID, INT4OID, INT8OID};
	Datum args[4] = {Int32GetDatum(t->pipeline_id), CStringGetTextDatum(t->topic),
					 Int32GetDatum(partition), Int64GetDatum(next)};

	run("INSERT INTO stocks_stream.offsets (pipeline_id, topic, partition, next_offset) "
		"VALUES ($1, $2, $3, $4) ON CONFLICT (pipeline_id, topic, partition) DO UPDATE "
		"SET next_offset = EXCLUDED.next_offset, updated_at = now()",
		4, types, args, SPI_OK_INSERT);
}

static void
add_gap(const Target *t, const char *key_topic, int32 partition, int64 from, int64 to,
		const char *reason, const char *detail)
{
	Oid types[7] = {TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum args[7] = {CStringGetTextDatum(t->name),
					 CStringGetTextDatum(key_topic),
					 Int32GetDatum(partition),
					 Int64GetDatum(from),
					 Int64GetDatum(to),
					 CStringGetTextDatum(reason),
					 CStringGetTextDatum(detail)};

	run("INSERT INTO stocks_stream.archive_gaps "
		"(pipeline, topic, partition, from_offset, to_offset, reason, detail) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7)",
		7, types, args, SPI_OK_INSERT);
}

/* Record the incarnation now archived, and forget the partitions it has not. */
static void
set_incarnation(const Target *t, const char *topic_id, const char *key_topic, int n)
{
	Oid types[4] = {INT4OID, TEXTOID, TEXTOID, TEXTOID};
	Datum args[4] = {Int32GetDatum(t->pipeline_id), CStringGetTextDatum(t->topic),
					 topic_id ? CStringGetTextDatum(topic_id) : (Datum) 0,
					 CStringGetTextDatum(key_topic)};
	char nulls[4] = {' ', ' ', topic_id ? ' ' : 'n', ' '};
	Oid dtypes[3] = {INT4OID, TEXTOID, INT4OID};
	Datum dargs[3] = {args[0], args[1], Int32GetDatum(n)};

	if (SPI_execute_with_args("INSERT INTO stocks_stream.pipeline_topics "
							  "(pipeline_id, topic, topic_id, key_topic) VALUES ($1, $2, $3, $4) "
							  "ON CONFLICT (pipeline_id, topic) DO UPDATE SET "
							  "topic_id = EXCLUDED.topic_id, key_topic = EXCLUDED.key_topic, "
							  "adopted_at = now()",
							  4, types, args, nulls, false, 0) != SPI_OK_INSERT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not update stocks_stream.pipeline_topics")));
	run("DELETE FROM stocks_stream.offsets WHERE pipeline_id = $1 AND topic = $2 "
		"AND partition >= $3",
		3, dtypes, dargs, SPI_OK_DELETE);
}

/* The workers restart, and start from the offsets set here. */
static void
restart_workers(const Target *t)
{
	Oid types[1] = {INT4OID};
	Datum args[1] = {Int32GetDatum(t->pipeline_id)};

	run("UPDATE stocks_stream.pipelines SET generation = generation + 1, updated_at = now() "
		"WHERE pipeline_id = $1",
		1, types, args, SPI_OK_UPDATE);
}

static const char *const start_names[] = {"earliest", "latest", "a time"};

/*
 * One partition: where it starts (returned), and the gap before it
 * (recorded; its size in *skipped).  Within the same incarnation never
 * before the stored offset, unless that lies beyond the partition's end.
 */
static int64
reset_partition(const Target *t, const char *key_topic, bool same, int32 p, const PartitionEnds *e,
				int64 stored, const ResetStart *start, int64 *skipped)
{
	int64 asked = start->kind == START_EARLIEST ? e->low
				  : start->kind == START_LATEST ? e->high
				  : e->at >= 0					? Max(e->at, e->low)
												: e->high;
	int64 from = e->low;
	int64 begin = asked;
	const char *reason = same ? "reset" : "topic re-created";
	char detail[160];

	if (same && stored >= 0 && stored <= e->high)
	{
		begin = Max(asked, stored);
		from = stored;
		if (stored < e->low && begin == e->low)
			reason = "retention";
	}
	snprintf(detail, sizeof(detail),
			 "reset_pipeline_offsets(start => %s): the log held %lld to %lld",
			 start_names[start->kind], (long long) e->low, (long long) e->high - 1);
	*skipped = Max(begin - from, 0);
	if (*skipped > 0)
		add_gap(t, key_topic, p, from, begin - 1, reason, detail);
	set_offset(t, p, begin);
	return begin;
}

PG_FUNCTION_INFO_V1(ss_reset_pipeline_offsets);

/*
 * reset_pipeline_offsets(pipeline text, start text | timestamptz) ->
 * (partition, previous_offset, start_offset, offsets_skipped)
 */
Datum
ss_reset_pipeline_offsets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ResetStart start;
	Target t;
	PartitionEnds *ends;
	int64 *stored;
	char *topic_id = NULL, *old_id = NULL, *key_topic = NULL;
	bool found, same;
	int n;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream.reset_pipeline_offsets: pipeline must not be NULL"),
						errhint("SELECT name FROM stocks_stream.pipelines lists the pipelines.")));
	start = start_argument(fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream.reset_pipeline_offsets: SPI_connect failed")));
	t = lock_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	ends = read_topic(t.topic, &start, &n, &topic_id);
	found = lock_incarnation(&t, &old_id, &key_topic);
	same = !found || old_id == NULL || topic_id == NULL || strcmp(old_id, topic_id) == 0;
	if (!same)
		key_topic = ss_archive_topic_key_topic(t.topic, topic_id);
	else if (!found)
		key_topic = t.topic;
	stored = lock_offsets(&t, n);
	for (int p = 0; p < n; p++)
	{
		Datum values[4];
		bool nulls[4] = {false, stored[p] < 0, false, false};
		int64 skipped;

		values[0] = Int32GetDatum(p);
		values[1] = Int64GetDatum(stored[p]);
		values[2] = Int64GetDatum(
			reset_partition(&t, key_topic, same, p, &ends[p], stored[p], &start, &skipped));
		values[3] = Int64GetDatum(skipped);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (!same || !found || old_id == NULL)
		set_incarnation(&t, topic_id, key_topic, same ? INT_MAX : n);
	restart_workers(&t);
	SPI_finish();
	return (Datum) 0;
}
