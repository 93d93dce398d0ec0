/*
 * archive_worker.c
 *	  The archive worker: a Kafka consumer-group member that writes every
 *	  message of its partitions to S3 exactly once.
 *
 * Messages are buffered per partition (batch.c).  A batch is flushed when it
 * reaches the pipeline's max messages or max bytes, when its oldest message
 * reaches max age, or when the worker's buffers together would pass max
 * bytes.  A flush hands the batch's bytes to a non-blocking PUT
 * (archive_uploads.c) and the worker goes on reading Kafka while they
 * travel, beside other partitions' objects
 * (stocks_stream.archive_requests_in_flight); once S3 has them, the
 * object's manifest row and the partition's next offset are recorded in one
 * transaction (pipeline_store.c), then the offset is committed to Kafka for
 * the benefit of standard lag tools.  A partition has one object in flight
 * at a time, so its objects are recorded in offset order.  Postgres is the
 * source of truth for this instance: on assignment the worker seeks to the
 * offsets stored there, or to the group's committed offset in Kafka when
 * that is later (another instance of the pipeline archived further).
 *
 * If S3 fails, the worker keeps the object and its batches, pauses all its
 * partitions and retries with bounded exponential backoff; nothing is
 * recorded until the object is in S3.  On SIGTERM it simply exits: what is
 * not recorded is re-read from the stored offsets by whoever owns the
 * partition next.
 *
 * The worker waits inside rd_kafka_consumer_poll (or, while requests are in
 * flight, on their sockets), at most 100 ms at a time, so SIGTERM and SIGHUP
 * are seen within that (not on the latch and librdkafka's event pipe, which
 * left the worker idle between wake-ups: see bench/README.md).  All of
 * librdkafka's callbacks (rebalance, log, error) are served by
 * rd_kafka_consumer_poll on this thread.
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/archive_gaps.h"
#include "archive/archive_probe.h"
#include "archive/archive_uploads.h"
#include "archive/archive_worker.h"
#include "archive/batch.h"
#include "archive/batch_parquet.h"
#include "archive/object_key.h"
#include "core/clock.h"
#include "core/pipeline_store.h"
#include "core/settings.h"
#include "core/worker_args.h"
#include "core/worker_loop.h"
#include "core/worker_status.h"
#include "kafka/kafka.h"
#include "s3/s3.h"

#define MAX_POLL_PER_ROUND	   20000
#define UPLOAD_STEP_EVERY	   1000
#define MAX_WAIT_MS			   100 /* how long signals may wait while Kafka is quiet */
#define INITIAL_BACKOFF_MS	   500
#define COMMITTED_TIMEOUT_MS   10000
#define EXIT_COMMIT_TIMEOUT_MS 2000
#define AWAIT_UNRECORDED_MS	   30000 /* longest a batch waits to match an unrecorded object */

static PipelineConfig *pipeline = NULL;
static int worker_no = 0;
static WorkerStatus *status = NULL;
static rd_kafka_t *consumer = NULL;

/* batches indexed by partition number */
static PartitionBatch *batches = NULL;
static int nbatches = 0;
static int64 buffered_bytes = 0;

/* S3 failure state: partitions paused, next retry time */
static bool paused = false;
static int backoff_ms = INITIAL_BACKOFF_MS;
static TimestampTz retry_at = 0;

/* error raised inside the rebalance callback, re-raised after poll returns */
static char *rebalance_error = NULL;

static int nprobes = 0;	  /* batches waiting for a probe's answer (archive_probe.c) */
static int nunprobed = 0; /* assigned partitions whose probe is still to start */

/* real-time mode: rows were loaded since gold was last refreshed */
static bool gold_due = false;
static TimestampTz gold_tried_at = 0;
static bool waiting_for_topic = false;
static int64 messages_read = 0;	   /* published with the lag and each record */
static bool kafka_refused = false; /* the brokers refused our SASL credentials or TLS */

static void abandon_probe(PartitionBatch *b);
static void advance_probes(void);
static void settle_probe_now(PartitionBatch *b);

/*
 * A Kafka error into worker_status.  A refusal (SASL or TLS) is a state
 * too, kept until partitions are assigned or a message comes; the
 * "brokers are down" that follow it say less, and leave its error in place.
 */
static void
record_kafka_error(KafkaErrorKind kind, const char *message)
{
	if (status == NULL)
		return;
	ss_worker_status_add(status, ARCHIVE_KAFKA_ERRORS, 1);
	if (kind == KAFKA_ERROR_SASL || kind == KAFKA_ERROR_TLS)
	{
		kafka_refused = true;
		ss_worker_status_set_state(status, kind == KAFKA_ERROR_SASL ? "Kafka authentication failed"
																	: "Kafka TLS failed");
	}
	else if (kafka_refused && kind == KAFKA_ERROR_DOWN)
		return;
	ss_worker_status_set_error(status, message);
}

static PartitionBatch *
batch_for(int32 partition)
{
	if (partition >= nbatches)
	{
		int n = Max(partition + 1, nbatches * 2);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (batches == NULL)
			batches = palloc0(sizeof(PartitionBatch) * n);
		else
		{
			batches = repalloc(batches, sizeof(PartitionBatch) * n);
			memset(batches + nbatches, 0, sizeof(PartitionBatch) * (n - nbatches));
		}
		for (int i = nbatches; i < n; i++)
		{
			batches[i].partition = i;
			batches[i].next_offset = -1;
			batches[i].recorded_offset = -1;
			ss_batch_clear(&batches[i]);
		}
		nbatches = n;
		MemoryContextSwitchTo(old);
	}
	return &batches[partition];
}

static void
publish_assignment(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < nbatches; i++)
		if (batches[i].assigned)
			appendStringInfo(&buf, "%s%d", buf.len ? "," : "", i);
	ss_worker_status_set_detail(status, buf.data);
	pfree(buf.data);
}

/*
 * The group's offsets committed in Kafka for these partitions (-1 where
 * there is none, or an archive worker committed it for another incarnation
 * of the topic).  Every worker of every instance in the consumer group
 * commits there after it has recorded an object, with its mark; foreign[i]
 * says that no archive worker committed it (archive_gaps.c).
 */
static int64 *
committed_offsets(rd_kafka_topic_partition_list_t *parts, bool *foreign)
{
	rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
	int64 *committed = palloc(sizeof(int64) * Max(parts->cnt, 1));
	rd_kafka_resp_err_t err = rd_kafka_committed(consumer, copy, COMMITTED_TIMEOUT_MS);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_topic_partition_list_destroy(copy);
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream: could not read the group's committed offsets: %s",
							   rd_kafka_err2str(err))));
	}
	for (int i = 0; i < parts->cnt; i++)
		committed[i] = ss_archive_gaps_committed(&copy->elems[i], &foreign[i]);
	rd_kafka_topic_partition_list_destroy(copy);
	return committed;
}

/*
 * Set each partition's start offset: the later of the one stored in this
 * database and the one the consumer group committed in Kafka.  Stored
 * offsets are the truth for what this instance archived; the committed
 * one covers what other instances of the same pipeline (same group)
 * archived while they owned the partition.  With neither, from the start.
 * A committed offset ahead that no archive worker committed skips records:
 * a gap, recorded first.  A re-created topic holds every partition
 * (archive_gaps.c).
 */
static void
seek_to_stored_offsets(rd_kafka_topic_partition_list_t *parts)
{
	StoredOffset *stored;
	bool recreated = ss_archive_gaps_check_topic();
	int n = ss_pipeline_store_load_offsets(pipeline->pipeline_id, pipeline->topic, &stored);
	bool *foreign = palloc0(sizeof(bool) * Max(parts->cnt, 1));
	int64 *committed = committed_offsets(parts, foreign);

	/* listings taken before this assignment could miss what was put since */
	ss_archive_probe_forget_folders();
	for (int i = 0; i < parts->cnt; i++)
	{
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		PartitionBatch *b = batch_for(tp->partition);
		int64 here = -1;
		int64 start;

		for (int j = 0; j < n; j++)
			if (stored[j].partition == tp->partition)
				here = stored[j].next_offset;
		start = Max(here, committed[i]);
		tp->offset = start >= 0 ? start : RD_KAFKA_OFFSET_BEGINNING;
		ss_archive_uploads_abandon(ss_archive_uploads_of(tp->partition));
		abandon_probe(b);
		buffered_bytes -= b->len;
		ss_batch_clear(b);
		b->assigned = true;
		b->next_offset = start;
		b->recorded_offset = -1;
		b->held = recreated;
		b->gap_reason = NULL;
		if (!b->probe_unrecorded)
			nunprobed++;
		b->probe_unrecorded = true;
		if (!recreated && here >= 0 && committed[i] > here && foreign[i])
			ss_archive_gaps_group_moved(b, here, committed[i]);
	}
	pfree(stored);
	pfree(committed);
	pfree(foreign);
}

/* "running", or why partitions are held (archive_gaps.c) */
static const char *
running_state(void)
{
	for (int i = 0; i < nbatches; i++)
		if (batches[i].assigned && batches[i].held)
			return ss_archive_gaps_hold_state();
	return "running";
}

/* Partitions assigned, or a message came: a refusal is over. */
static void
kafka_accepted(void)
{
	if (!kafka_refused)
		return;
	kafka_refused = false;
	if (!paused && !waiting_for_topic)
		ss_worker_status_set_state(status, running_state());
}

/*
 * Fetch the assigned partitions, all but those held (they stay ours in the
 * group, unread), and say which are held.
 */
static void
assign_fetchable(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *fetch = rd_kafka_topic_partition_list_new(Max(parts->cnt, 1));
	StringInfoData held;

	initStringInfo(&held);
	for (int i = 0; i < parts->cnt; i++)
	{
		if (batch_for(parts->elems[i].partition)->held)
			appendStringInfo(&held, "%s%d", held.len ? "," : "", parts->elems[i].partition);
		else
			rd_kafka_topic_partition_list_add(fetch, pipeline->topic, parts->elems[i].partition)
				->offset = parts->elems[i].offset;
	}
	rd_kafka_assign(rk, fetch);

	/*
	 * librdkafka keeps an application's pause of a partition across its
	 * unassignment (it resets only its own).  A partition paused while S3
	 * refused an object (set_paused), or held, that the group took away
	 * before the worker resumed would come back paused and never be read
	 * again: so each partition assigned is paused or resumed here, as the
	 * worker is now.
	 */
	if (paused)
		rd_kafka_pause_partitions(rk, fetch);
	else
		rd_kafka_resume_partitions(rk, fetch);
	rd_kafka_topic_partition_list_destroy(fetch);
	if (held.len > 0)
		ss_archive_gaps_announce_holds(held.data);
	pfree(held.data);
}

/*
 * Served from rd_kafka_consumer_poll on this thread.  Errors must not
 * longjmp through librdkafka, so they are caught here and re-raised by the
 * main loop.
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
			 void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		MemoryContext old = CurrentMemoryContext;

		PG_TRY();
		{
			seek_to_stored_offsets(parts);
		}
		PG_CATCH();
		{
			ErrorData *edata;

			MemoryContextSwitchTo(old);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			rebalance_error = MemoryContextStrdup(TopMemoryContext, edata->message);
			rd_kafka_assign(rk, NULL);
			return;
		}
		PG_END_TRY();
		kafka_accepted();
		if (parts->cnt > 0 && waiting_for_topic)
		{
			waiting_for_topic = false;
			if (!paused)
				ss_worker_status_set_state(status, running_state());
		}
		assign_fetchable(rk, parts);
		ereport(
			LOG,
			(errmsg("stocks_stream pipeline \"%s\" worker %d: assigned %d partition(s) of \"%s\"",
					pipeline->name, worker_no, parts->cnt, pipeline->topic)));
	}
	else
	{
		/* revoked: what is not recorded yet will be re-read by the new owner */
		for (int i = 0; i < parts->cnt; i++)
		{
			PartitionBatch *b = batch_for(parts->elems[i].partition);

			ss_archive_uploads_abandon(ss_archive_uploads_of(b->partition));
			abandon_probe(b);
			buffered_bytes -= b->len;
			ss_batch_clear(b);
			b->assigned = false;
			b->held = false;
			b->gap_reason = NULL;
			b->next_offset = -1;
			b->recorded_offset = -1;
			if (b->probe_unrecorded)
				nunprobed--;
			b->probe_unrecorded = false;
		}
		rd_kafka_assign(rk, NULL);
	}
	publish_assignment();
}

static void
set_paused(bool pause)
{
	rd_kafka_topic_partition_list_t *assignment = NULL;

	if (rd_kafka_assignment(consumer, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		/* a held partition stays paused (archive_gaps.c) */
		for (int i = assignment->cnt - 1; i >= 0 && !pause; i--)
			if (batch_for(assignment->elems[i].partition)->held)
				rd_kafka_topic_partition_list_del_by_idx(assignment, i);
		if (pause)
			rd_kafka_pause_partitions(consumer, assignment);
		else
			rd_kafka_resume_partitions(consumer, assignment);
		rd_kafka_topic_partition_list_destroy(assignment);
	}
	paused = pause;
	ss_worker_status_set_state(status, pause ? "waiting for S3" : running_state());
}

static void
schedule_retry(const char *error)
{
	ss_worker_status_set_error(status, error);
	ss_worker_status_add(status, ARCHIVE_S3_ERRORS, 1);
	ereport(LOG, (errmsg("stocks_stream pipeline \"%s\": %s; retrying in %d ms", pipeline->name,
						 error, backoff_ms)));
	retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms);
	backoff_ms = Min(backoff_ms * 2, ss_settings_retry_max_backoff_ms);
	if (!paused)
		set_paused(true);
}

/*
 * Commit the list (asynchronously; with a queue, its result goes there) with
 * the archive workers' mark, which tells the other instances of the
 * pipeline that the offsets before were archived (archive_gaps.c); the
 * list is destroyed.
 */
static void
commit_marked(rd_kafka_topic_partition_list_t *list, rd_kafka_queue_t *queue)
{
	const char *mark = ss_archive_gaps_commit_mark();

	for (int i = 0; i < list->cnt; i++)
	{
		list->elems[i].metadata = (void *) mark;
		list->elems[i].metadata_size = strlen(mark);
	}
	if (queue != NULL)
		rd_kafka_commit_queue(consumer, list, queue, NULL, NULL);
	else
		rd_kafka_commit(consumer, list, 1);
	/* the mark is ours, not librdkafka's to free (it commits a copy) */
	for (int i = 0; i < list->cnt; i++)
		list->elems[i].metadata = NULL;
	rd_kafka_topic_partition_list_destroy(list);
}

/* Tell Kafka where the objects just recorded end, for standard lag tools. */
static void
commit_to_kafka(ArchiveUpload **recorded, int n)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);

	for (int i = 0; i < n; i++)
	{
		rd_kafka_topic_partition_list_add(list, pipeline->topic, recorded[i]->partition)->offset =
			recorded[i]->last_offset + 1;
		batch_for(recorded[i]->partition)->recorded_offset = recorded[i]->last_offset + 1;
	}
	commit_marked(list, 0);
}

/*
 * At exit, make sure the group's committed offsets include every object
 * recorded (commits are asynchronous): the instance that takes the
 * partitions over resumes from them, and would otherwise archive the last
 * objects again.  Bounded, so a broker that is down cannot hold the exit.
 */
static void
commit_recorded_at_exit(int code, Datum arg)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *ev;

	if (consumer == NULL)
		return;
	list = rd_kafka_topic_partition_list_new(Max(nbatches, 1));
	for (int i = 0; i < nbatches; i++)
		if (batches[i].assigned && batches[i].recorded_offset >= 0)
			rd_kafka_topic_partition_list_add(list, pipeline->topic, i)->offset =
				batches[i].recorded_offset;
	if (list->cnt > 0)
	{
		queue = rd_kafka_queue_new(consumer);
		commit_marked(list, queue);
		ev = rd_kafka_queue_poll(queue, EXIT_COMMIT_TIMEOUT_MS);
		if (ev != NULL)
			rd_kafka_event_destroy(ev);
		rd_kafka_queue_destroy(queue);
	}
	else
		rd_kafka_topic_partition_list_destroy(list);
}

/*
 * Objects that have arrived in S3: record them, all in one transaction,
 * then tell Kafka.
 */
static void
record_arrived(ArchiveUpload **arrived, int n)
{
	FlushRecord *recs = palloc(sizeof(FlushRecord) * n);
	int64 deltas[STATUS_COUNTERS] = {0};
	int refused;
	TimestampTz now;

	for (int i = 0; i < n; i++)
	{
		recs[i].pipeline = pipeline;
		recs[i].object_key = arrived[i]->key;
		recs[i].partition = arrived[i]->partition;
		recs[i].first_offset = arrived[i]->first_offset;
		recs[i].last_offset = arrived[i]->last_offset;
		recs[i].message_count = arrived[i]->count;
		recs[i].bytes = arrived[i]->len;
		recs[i].etag = arrived[i]->etag;
	}
	refused = ss_pipeline_store_record_flushes(recs, n);
	if (refused >= 0)
		ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						errmsg("stocks_stream pipeline \"%s\": partition %d was advanced past "
							   "offset %lld by another consumer",
							   pipeline->name, arrived[refused]->partition,
							   (long long) arrived[refused]->first_offset),
						errdetail("The worker restarts and resumes from the stored offset.")));
	commit_to_kafka(arrived, n);
	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		ss_worker_status_observe(status, LATENCY_UPLOAD,
								 arrived[i]->answered_at - arrived[i]->sent_at);
		ss_worker_status_observe(status, LATENCY_FLUSH, now - arrived[i]->handed_at);
		deltas[ARCHIVE_MESSAGES] += arrived[i]->count;
		deltas[ARCHIVE_BYTES] += arrived[i]->raw_len;
		deltas[ARCHIVE_OBJECTS]++;
		ss_archive_uploads_release(arrived[i]);
	}
	ss_worker_status_add_activity(status, deltas);
	ss_worker_status_set_counter(status, ARCHIVE_READ, messages_read);
	pfree(recs);
	if (pipeline->realtime && ss_pipeline_store_load_bronze(pipeline) > 0)
		gold_due = true;
}

/*
 * Take what S3 has answered: record the objects that arrived, and note
 * where each probed partition's unrecorded object ends.  Returns false
 * when an object was refused (it waits for its retry).
 */
static bool
collect_finished(void)
{
	ArchiveUpload *arrived[ARCHIVE_MAX_UPLOADS];
	char *refusal;
	int narrived = ss_archive_uploads_arrived(arrived, &refusal);

	if (refusal != NULL)
		schedule_retry(refusal);
	if (narrived > 0)
		record_arrived(arrived, narrived);
	advance_probes();
	return !ss_archive_uploads_awaiting_retry();
}

/* Wait up to MAX_WAIT_MS for S3 to answer, and take what it answered. */
static bool
await_s3(void)
{
	ss_s3_async_step(MAX_WAIT_MS);
	CHECK_FOR_INTERRUPTS();
	return collect_finished();
}

/*
 * See the objects on their way through (archive_uploads.c), and take the
 * probes' answers: with `wait`, until S3 has answered every object;
 * without, only as far as they go now.  Objects refused before are sent
 * again once their retry is due.  Returns true when no object is on its
 * way any more; a refused object schedules a retry (and pauses the
 * partitions) and stays.
 */
static bool
finish_pending(bool wait)
{
	bool ok;

	if (ss_archive_uploads_count() == 0 && nprobes == 0)
		return true;
	if (ss_archive_uploads_awaiting_retry())
	{
		if (GetCurrentTimestamp() < retry_at)
			return false;
		ss_archive_uploads_send_again();
	}
	ss_s3_async_step(0);
	ok = collect_finished();
	while (ok && wait && ss_archive_uploads_count() > 0)
		ok = await_s3();
	return ok && ss_archive_uploads_count() == 0;
}

/* May one more request go to S3 (objects and probes count alike)? */
static bool
requests_free(void)
{
	return ss_archive_uploads_count() + ss_archive_probe_requests() <
		   ss_settings_archive_requests_in_flight;
}

/*
 * Room for one more object of `len` bytes on its way: a free request, and
 * its body within max bytes beside the others'.  Waits for S3 until there
 * is; false when an object was refused.
 */
static bool
room_for_object(size_t len)
{
	while (
		ss_archive_uploads_count() > 0 &&
		(!requests_free() || ss_archive_uploads_bytes() + (int64) len > pipeline->batch_max_bytes))
		if (!await_s3())
			return false;
	return true;
}

/* What the pipeline's objects hold, and so their keys' extension. */
static ObjectFormat
pipeline_format(void)
{
	if (pipeline->parquet)
		return OBJECT_FORMAT_PARQUET;
	return pipeline->gzip ? OBJECT_FORMAT_NDJSON_GZ : OBJECT_FORMAT_NDJSON;
}

/*
 * Hand a batch to S3: once the partition's object before it is through,
 * its bytes go on their way (archive_uploads.c) and the batch starts
 * empty.  Returns false
 * (the batch kept as it is) when the object before it could not be
 * written.
 */
static bool
flush_batch(PartitionBatch *b)
{
	ArchiveUpload *before;
	char *key;

	settle_probe_now(b);
	/* the partition's object before it first, so objects are recorded in order */
	while ((before = ss_archive_uploads_of(b->partition)) != NULL)
		if (!ss_archive_uploads_travelling(before) || !await_s3())
			return false;
	if (ss_archive_uploads_awaiting_retry() || !room_for_object(b->len))
		return false;
	key = ss_object_key_format(pipeline->key_prefix, pipeline->key_topic, b->partition,
							   b->first_offset, b->last_offset, b->first_timestamp_ms,
							   pipeline_format());
	buffered_bytes -= b->len;
	ss_archive_uploads_start(b, key);
	pfree(key);
	return true;
}

/* Flush the largest batches until `need` more bytes fit in max bytes. */
static bool
make_room(size_t need)
{
	while (buffered_bytes > 0 && buffered_bytes + (int64) need > pipeline->batch_max_bytes)
	{
		PartitionBatch *largest = NULL;

		for (int i = 0; i < nbatches; i++)
			if (batches[i].count > 0 && (largest == NULL || batches[i].len > largest->len))
				largest = &batches[i];
		if (largest == NULL || !flush_batch(largest))
			return false;
	}
	return true;
}

/*
 * The topic does not exist yet: a pipeline is often started before its
 * source first produces.  That is a state, not an error; librdkafka keeps
 * asking for the topic and the group assigns its partitions once it exists.
 */
static void
wait_for_topic(void)
{
	if (waiting_for_topic)
		return;
	waiting_for_topic = true;
	ss_worker_status_set_state(status, "waiting for topic");
	ereport(LOG, (errmsg("stocks_stream pipeline \"%s\": topic \"%s\" does not exist yet; waiting",
						 pipeline->name, pipeline->topic)));
}

/*
 * Look for an object that a worker put where this partition now resumes
 * but never recorded (archive_probe.c): once per partition and assignment,
 * when the batch's first message arrives, answered before its second is
 * added (settle_probe_now), so the probes of many partitions travel side
 * by side, most of them answered by one listing of their hour's folder.
 */
static void
start_probe(PartitionBatch *b, int64 first_offset, int64 timestamp_ms)
{
	char *start = ss_object_key_format_start(pipeline->key_prefix, pipeline->key_topic,
											 b->partition, first_offset, timestamp_ms);

	b->probe = ss_archive_probe_start(start);
	b->end_at = -1;
	nprobes++;
	pfree(start);
	if (requests_free() && ss_archive_probe_needs_request(b->probe))
		ss_archive_probe_send(b->probe);
	/* every partition has probed: the folders' listings are of no more use */
	if (--nunprobed == 0)
		ss_archive_probe_forget_folders();
}

/*
 * The probe has answered: the end of the unrecorded object that starts
 * where the batch does, if any.  When S3 did not answer, the batch is cut
 * as usual.
 */
static void
settle_probe(PartitionBatch *b)
{
	b->end_at = ss_archive_probe_end(b->probe);
	b->probe = NULL;
	nprobes--;
}

/* Take the probes' answers, and send the requests they wait for as room allows. */
static void
advance_probes(void)
{
	for (int i = 0; i < nbatches && nprobes > 0; i++)
	{
		PartitionBatch *b = &batches[i];

		if (b->probe == NULL)
			continue;
		if (ss_archive_probe_answered(b->probe))
			settle_probe(b);
		else if (requests_free() && ss_archive_probe_needs_request(b->probe))
			ss_archive_probe_send(b->probe);
	}
}

/*
 * Wait for the batch's probe, if it has one, and settle it.  Its request
 * goes when there is room for it, or at once if S3 refused an object (the
 * objects then wait for their retry, and the probe would wait with them).
 */
static void
settle_probe_now(PartitionBatch *b)
{
	while (b->probe != NULL && !ss_archive_probe_answered(b->probe))
	{
		if (ss_archive_probe_needs_request(b->probe))
		{
			while (!requests_free() && await_s3())
				;
			if (b->probe != NULL && ss_archive_probe_needs_request(b->probe))
				ss_archive_probe_send(b->probe);
			continue;
		}
		ss_s3_async_step(MAX_WAIT_MS);
		CHECK_FOR_INTERRUPTS();
	}
	if (b->probe != NULL)
		settle_probe(b);
}

/* A revoked or reassigned partition's probe is of no use any more. */
static void
abandon_probe(PartitionBatch *b)
{
	if (b->probe == NULL)
		return;
	ss_archive_probe_abandon(b->probe);
	b->probe = NULL;
	nprobes--;
}

/* Does the batch end where the unrecorded object does? */
static bool
end_reached(const PartitionBatch *b)
{
	return b->count > 0 && b->end_at >= 0 && b->last_offset >= b->end_at;
}

/* Is the batch still short of the unrecorded object it is to match, or waiting to learn it? */
static bool
awaiting_end(const PartitionBatch *b)
{
	return b->probe != NULL ||
		   (b->end_at >= 0 && b->last_offset < b->end_at &&
			!TimestampDifferenceExceeds(b->opened_at, ss_clock_now(), AWAIT_UNRECORDED_MS));
}

/*
 * The partition has caught up with its producers (librdkafka's
 * enable.partition.eof).  A batch a quarter full or more, of max messages
 * or max bytes, goes now instead of at its max age: waiting would only add
 * latency (the last object of a backlog waited out the whole age), and the
 * object is not a small one.  Smaller batches wait for their age, as they
 * always did, so a trickle of messages does not make tiny objects.
 */
static void
caught_up(int32 partition)
{
	PartitionBatch *b = batch_for(partition);

	if (b->assigned && b->count > 0 && !paused && !awaiting_end(b) &&
		(b->count * 4 >= pipeline->batch_max_messages ||
		 b->len * 4 >= (size_t) pipeline->batch_max_bytes))
		(void) flush_batch(b);
}

/*
 * Kafka says the partition's fetch offset is out of range, and stopped it
 * (auto.offset.reset=error): a gap, or a hold (archive_gaps.c): of this
 * partition when its offset is beyond its end, of all of them when the
 * topic was re-created.
 */
static void
out_of_range(int32 partition, int64 offset)
{
	PartitionBatch *b = batch_for(partition);
	bool recreated = false;
	StringInfoData held;

	if (!b->assigned || b->held || b->gap_reason != NULL ||
		!ss_archive_gaps_out_of_range(b, offset, &recreated))
		return;
	initStringInfo(&held);
	for (int i = 0; i < nbatches; i++)
		if (batches[i].assigned && (i == partition || (recreated && !batches[i].held)))
		{
			ss_archive_gaps_hold(&batches[i], recreated);
			appendStringInfo(&held, "%s%d", held.len ? "," : "", i);
		}
	ss_archive_gaps_announce_holds(held.data);
	pfree(held.data);
}

/*
 * Skip the gaps of partitions whose earlier offsets are all recorded: the
 * batch before a gap is flushed and its object recorded first, so the
 * stored offset moves in offset order.
 */
static void
settle_gaps(void)
{
	for (int i = 0; i < nbatches && !paused; i++)
	{
		PartitionBatch *b = &batches[i];

		if (!b->assigned || b->gap_reason == NULL)
			continue;
		if (b->count > 0 && !flush_batch(b))
			return;
		if (ss_archive_uploads_of(b->partition) == NULL)
			ss_archive_gaps_record(b);
	}
}

static void
handle_message(rd_kafka_message_t *msg)
{
	PartitionBatch *b;
	size_t need = pipeline->parquet ? ss_batch_parquet_size(msg) : msg->len + 1;
	size_t held;

	if (msg->err)
	{
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			caught_up(msg->partition);
		else if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
			out_of_range(msg->partition, msg->offset);
		else if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			wait_for_topic();
		else
		{
			char buf[600];

			snprintf(buf, sizeof(buf), "Kafka: %s", rd_kafka_message_errstr(msg));
			record_kafka_error(ss_kafka_error_kind(msg->err, buf), buf);
			ereport(LOG, (errmsg("stocks_stream pipeline \"%s\": %s", pipeline->name, buf)));
		}
		return;
	}
	kafka_accepted();

	b = batch_for(msg->partition);
	/* a redelivery of something we already hold or archived, or of a held partition */
	if (!b->assigned || b->held || b->gap_reason != NULL ||
		(b->next_offset >= 0 && msg->offset < b->next_offset))
		return;
	/* the batch's second message waits for where its first object is to end */
	settle_probe_now(b);
	if (!paused)
	{
		/* keep each object within max bytes, and offsets in it contiguous */
		if (b->count > 0 && (end_reached(b) || b->len + need > (size_t) pipeline->batch_max_bytes ||
							 msg->offset != b->last_offset + 1))
			flush_batch(b);
		if (!paused)
			make_room(need);
	}
	if (b->count == 0 && b->probe_unrecorded)
	{
		b->probe_unrecorded = false;
		start_probe(b, msg->offset, rd_kafka_message_timestamp(msg, NULL));
	}
	held = b->len;
	if (pipeline->parquet)
		ss_batch_parquet_append(b, pipeline->topic, msg);
	else
		ss_batch_append(b, msg->offset, rd_kafka_message_timestamp(msg, NULL), msg->payload,
						msg->len);
	buffered_bytes += b->len - held; /* need, and a Parquet row's headers */
	messages_read++;
	if (!paused &&
		(end_reached(b) || (b->count >= pipeline->batch_max_messages && !awaiting_end(b)) ||
		 b->len >= (size_t) pipeline->batch_max_bytes))
		flush_batch(b);
}

/*
 * Record the objects that have arrived, and flush batches that are old
 * enough; while paused, retry the refused objects and then all batches.
 */
static void
flush_due_batches(void)
{
	TimestampTz now = ss_clock_now();

	if (paused && GetCurrentTimestamp() < retry_at)
		return;
	/* a failure pauses us; an upload still under way is waited for by flush_batch */
	if (!finish_pending(paused) && paused)
		return;
	for (int i = 0; i < nbatches; i++)
	{
		PartitionBatch *b = &batches[i];

		if (b->count == 0 || awaiting_end(b))
			continue;
		if (paused || end_reached(b) || now >= ss_batch_due_by_age(b, pipeline->batch_max_age_ms))
		{
			if (!flush_batch(b))
				return;
		}
	}
	if (paused)
	{
		ereport(LOG,
				(errmsg("stocks_stream pipeline \"%s\": S3 is back, resuming", pipeline->name)));
		backoff_ms = INITIAL_BACKOFF_MS;
		set_paused(false);
	}
}

/*
 * Publish the lag: for each assigned partition, the high watermark librdkafka
 * last saw in a fetch response (no broker call) less the first offset not
 * yet in S3.
 */
static void
publish_lag(void)
{
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();
	int64 lag = 0;

	if (!TimestampDifferenceExceeds(last, now, 1000))
		return;
	last = now;
	for (int i = 0; i < nbatches; i++)
	{
		PartitionBatch *b = &batches[i];
		int64 low, high, next;

		if (!b->assigned ||
			rd_kafka_get_watermark_offsets(consumer, pipeline->topic, i, &low, &high) !=
				RD_KAFKA_RESP_ERR_NO_ERROR ||
			high < 0)
			continue;
		next = b->count > 0 ? b->first_offset : (b->next_offset >= 0 ? b->next_offset : low);
		lag += Max(high - next, 0);
	}
	ss_worker_status_set_counter(status, ARCHIVE_LAG, lag);
	ss_worker_status_set_counter(status, ARCHIVE_READ, messages_read);
}

/*
 * Real-time mode keeps gold fresh too: after loads that brought rows, a
 * refresh of the recent minutes, at most once per batch age (a refresh
 * costs tens of milliseconds, a load of one object a few).  When another
 * refresh is running it is tried again one batch age later.
 */
static void
refresh_gold_when_due(void)
{
	TimestampTz now;

	if (!gold_due)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(gold_tried_at, now, pipeline->batch_max_age_ms))
		return;
	gold_tried_at = now;
	if (ss_pipeline_store_refresh_recent_gold() != GOLD_BUSY)
		gold_due = false;
}

/* When the batch is due by age (on the clock of the flush rules, core/clock.h). */
static TimestampTz
batch_due(PartitionBatch *b)
{
	if (awaiting_end(b))
		return TimestampTzPlusMilliseconds(b->opened_at, AWAIT_UNRECORDED_MS);
	return ss_batch_due_by_age(b, pipeline->batch_max_age_ms);
}

/* How long the main loop may sleep before a batch or a gold refresh becomes due. */
static long
next_timeout_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz due = TimestampTzPlusMilliseconds(now, 1000);
	long wait;

	if (gold_due)
		due = Min(due, TimestampTzPlusMilliseconds(gold_tried_at, pipeline->batch_max_age_ms));
	if (paused)
		due = Min(due, retry_at);
	wait = due <= now ? 0 : (long) ((due - now + 999) / 1000);
	if (!paused)
		for (int i = 0; i < nbatches; i++)
			if (batches[i].count > 0)
				wait = Min(wait, ss_clock_wait_ms(batch_due(&batches[i])));
	return wait;
}

/* Is a request on its way to S3 right now? */
static bool
uploading(void)
{
	return ss_s3_async_in_flight() > 0;
}

/*
 * Wait up to wait_ms for the first message, then take what is queued.
 * librdkafka serves its callbacks (rebalance, log, error) in here.  While
 * an object is on its way to S3 the wait is spent on its socket instead,
 * and every UPLOAD_STEP_EVERY messages libcurl gets to send some more.
 */
static void
consume_available(long wait_ms)
{
	for (int n = 0; n < MAX_POLL_PER_ROUND; n++)
	{
		rd_kafka_message_t *msg =
			rd_kafka_consumer_poll(consumer, n == 0 && !uploading() ? (int) wait_ms : 0);

		if (rebalance_error != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("stocks_stream pipeline \"%s\": could not load stored offsets: %s",
							pipeline->name, rebalance_error)));
		if (msg == NULL)
		{
			if (n == 0 && uploading())
				ss_s3_async_step((int) wait_ms);
			return;
		}
		handle_message(msg);
		rd_kafka_message_destroy(msg);
		if (n % UPLOAD_STEP_EVERY == UPLOAD_STEP_EVERY - 1 && uploading())
			ss_s3_async_step(0);
	}
}

static void
create_consumer(void)
{
	/*
	 * The prefetch queue is bounded, as small as stays fast: it is most of
	 * the worker's memory besides the batches.  A full queue pauses a
	 * partition for fetch.queue.backoff.ms, kept short (bench/README.md).
	 * Operators may override any of these in stocks_stream.kafka_properties.
	 */
	static const KafkaSetting defaults[] = {
		{"session.timeout.ms", "10000"},
		{"heartbeat.interval.ms", "1000"},
		{"queued.max.messages.kbytes", "4096"},
		{"enable.partition.eof", "true"}, /* caught_up() */
		/*
		 * Partitions added to the topic (and a topic deleted or created
		 * again) are seen at the next metadata refresh; librdkafka's 300 s
		 * left new partitions unread for minutes.
		 */
		{"topic.metadata.refresh.interval.ms", "5000"},
		/*
		 * A fetch of partitions with nothing new waits this long at the
		 * broker, and no other fetch goes to that broker meanwhile: with
		 * many partitions, those the full prefetch queue left out waited for
		 * it (512 partitions: 1.75-2.02 s per 1,000,000 messages against
		 * 2.30-2.67 s at librdkafka's 500 ms; bench/NOTEBOOK.md).  Data that
		 * arrives is answered at once either way.
		 */
		{"fetch.wait.max.ms", "100"},
#if RD_KAFKA_VERSION >= 0x020200ff
		{"fetch.queue.backoff.ms", "10"},
#else
		{"queued.min.messages", "10000000"},
#endif
		{NULL, NULL},
	};
	rd_kafka_conf_t *conf = ss_kafka_conf_new(record_kafka_error, defaults);
	char *group = psprintf("stocks_stream.%s", pipeline->name);
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;

	ss_kafka_conf_set(conf, "group.id", group);
	ss_kafka_conf_set(conf, "enable.auto.commit", "false");
	ss_kafka_conf_set(conf, "enable.auto.offset.store", "false");
	/* an offset out of range is a gap or a hold, decided by archive_gaps.c */
	ss_kafka_conf_set(conf, "auto.offset.reset", "error");
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);

	consumer = ss_kafka_new(RD_KAFKA_CONSUMER, conf);
	rd_kafka_poll_set_consumer(consumer);

	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, pipeline->topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream: could not subscribe to Kafka topic \"%s\": %s",
							   pipeline->topic, rd_kafka_err2str(err))));
}

/*
 * Settings were reloaded (a change of Kafka settings has made the worker
 * exit already, worker_loop.c); S3 settings are read at each request.
 */
static void
settings_reloaded(void)
{
	ss_s3_reset_connection();
}

void
ss_archive_worker_main(Datum main_arg)
{
	WorkerArgs args;

	ss_worker_loop_start();
	args = ss_worker_loop_args;
	worker_no = args.worker_no;

	pipeline = ss_pipeline_store_load_pipeline(args.owner_id);
	if (pipeline == NULL || !pipeline->running || pipeline->generation != args.generation ||
		args.worker_no >= pipeline->workers)
	{
		ereport(LOG,
				(errmsg("stocks_stream: pipeline %d changed before its worker started; exiting",
						args.owner_id)));
		proc_exit(0);
	}

	status = ss_worker_loop_claim_status(WORKER_ARCHIVE, pipeline->pipeline_id, pipeline->name);
	pgstat_report_appname(psprintf("stocks_stream archive %s/%d", pipeline->name, args.worker_no));

	/*
	 * Batch buffers are freed after every flush.  A fixed mmap threshold
	 * keeps glibc from raising it dynamically and serving them from the
	 * heap, where freed memory is not returned; at 128 kB (glibc's own
	 * starting value) the buffers of many partitions' small objects are
	 * mapped too (512 busy partitions: peak RSS 68-70 MB against 82-84 MB
	 * with 1 MB; bench/NOTEBOOK.md).
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	ss_batch_init_context();
	ss_archive_probe_configure(pipeline->bucket, pipeline_format());
	ss_archive_uploads_configure(pipeline->bucket, pipeline_format());
	create_consumer();
	ss_archive_gaps_configure(consumer, pipeline, status);
	before_shmem_exit(commit_recorded_at_exit, (Datum) 0);
	ss_worker_status_set_state(status, "running");

	for (;;)
	{
		if (ss_worker_loop_pass())
			settings_reloaded();
		consume_available(Min(next_timeout_ms(), MAX_WAIT_MS));
		flush_due_batches();
		settle_gaps();
		refresh_gold_when_due();
		publish_lag();
	}
}
