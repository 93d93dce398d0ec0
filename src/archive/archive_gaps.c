/*
 * archive_gaps.c
 *	  The offsets an archive worker skips, and the partitions it holds.
 *
 * No offset is skipped in silence.  The worker asks Kafka to report an
 * offset out of range (auto.offset.reset=error) instead of letting
 * librdkafka jump to the log's start, and decides itself:
 *
 * - the offset is below the log's start: records were deleted by retention
 *   before they were archived.  What the partition holds before them is
 *   flushed and recorded first, then the range is recorded as a gap (the
 *   stored offset moves past it in the same transaction) and the partition
 *   is fetched from the log's start;
 * - the offset is beyond the log's end: the topic was deleted and created
 *   again (its id differs from the one the pipeline archives), or its log
 *   was truncated.  The partition is held, not guessed: the worker's state
 *   says so with a hint, and reset_pipeline_offsets() (archive_reset.c)
 *   sets where it starts.
 *
 * At each assignment the topic's id in Kafka is compared with the
 * incarnation the pipeline archives (archive_topic.c): a new id holds every
 * partition the same way.  And a consumer group offset ahead of the stored
 * one, committed without an archive worker's mark (a tool, another
 * consumer), is recorded as a gap before the worker starts there.
 *
 * Gaps are recorded in their own transaction (pipeline_store.c), on this
 * thread, never from a librdkafka callback.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "archive/archive_gaps.h"
#include "archive/archive_topic.h"

#define KAFKA_TIMEOUT_MS 10000

static rd_kafka_t *consumer = NULL;
static PipelineConfig *pipeline = NULL;
static WorkerStatus *status = NULL;
static char *topic_id = NULL;	 /* of the incarnation archived; NULL: unknown */
static char *commit_mark = NULL; /* ss_archive_topic_commit_mark(topic_id) */
static bool recreated = false;	 /* the holds are for a re-created topic */

void
ss_archive_gaps_configure(rd_kafka_t *rk, PipelineConfig *p, WorkerStatus *s)
{
	consumer = rk;
	pipeline = p;
	status = s;
	commit_mark = MemoryContextStrdup(TopMemoryContext, ss_archive_topic_commit_mark(NULL));
}

/* Remember the incarnation archived and its key folder, for the worker's life. */
static void
set_incarnation(const char *id, const char *key_topic)
{
	topic_id = id ? MemoryContextStrdup(TopMemoryContext, id) : NULL;
	pipeline->key_topic = MemoryContextStrdup(TopMemoryContext, key_topic);
	commit_mark = MemoryContextStrdup(TopMemoryContext, ss_archive_topic_commit_mark(topic_id));
}

/*
 * At assignment: is the topic in Kafka the incarnation the pipeline
 * archives?  The first one a pipeline sees is recorded as its own (keys
 * under the topic's folder).  True when the topic was re-created: the
 * caller holds the partitions.
 */
bool
ss_archive_gaps_check_topic(void)
{
	TopicIncarnation inc = ss_pipeline_store_load_topic(pipeline);
	char *current = ss_archive_topic_id(consumer, pipeline->topic, KAFKA_TIMEOUT_MS);

	recreated = false;
	if (inc.found && inc.topic_id != NULL)
	{
		set_incarnation(inc.topic_id, inc.key_topic);
		recreated = current != NULL && strcmp(current, inc.topic_id) != 0;
		return recreated;
	}
	if (inc.supported)
		ss_pipeline_store_adopt_topic(pipeline, current,
									  inc.found ? inc.key_topic : pipeline->topic);
	set_incarnation(current, inc.found ? inc.key_topic : pipeline->topic);
	return false;
}

const char *
ss_archive_gaps_commit_mark(void)
{
	return commit_mark;
}

/* Record a gap now; another consumer having moved the stored offset restarts the worker. */
static void
record_gap(int32 partition, int64 from, int64 to, const char *reason, const char *detail)
{
	GapRecord g = {pipeline, partition, from, to, reason, detail};

	if (!ss_pipeline_store_record_gap(&g))
		ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						errmsg("stocks_stream pipeline \"%s\": partition %d was advanced past "
							   "offset %lld by another consumer",
							   pipeline->name, partition, (long long) from),
						errdetail("The worker restarts and resumes from the stored offset.")));
	ereport(LOG,
			(errmsg("stocks_stream pipeline \"%s\": partition %d skipped offsets %lld to %lld "
					"(%s): %s",
					pipeline->name, partition, (long long) from, (long long) to, reason, detail)));
}

/*
 * At assignment: the consumer group's committed offset is ahead of the
 * stored one and no archive worker committed it.  The offsets between are
 * skipped: record them before the worker starts at the committed offset.
 */
void
ss_archive_gaps_group_moved(PartitionBatch *b, int64 stored, int64 committed)
{
	char detail[160];

	snprintf(detail, sizeof(detail),
			 "the consumer group's offset was %lld, committed without an archive worker's mark "
			 "(a tool or another consumer)",
			 (long long) committed);
	record_gap(b->partition, stored, committed - 1, "group offset moved", detail);
}

/* Fetch the partition from `offset` again (Kafka stops it after an out-of-range error). */
static void
seek_partition(int32 partition, int64 offset)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_error_t *error;

	rd_kafka_topic_partition_list_add(list, pipeline->topic, partition)->offset = offset;
	error = rd_kafka_seek_partitions(consumer, list, KAFKA_TIMEOUT_MS);
	if (error == NULL && list->elems[0].err)
		error = rd_kafka_error_new(list->elems[0].err, "%s", rd_kafka_err2str(list->elems[0].err));
	rd_kafka_topic_partition_list_destroy(list);
	if (error != NULL)
	{
		char *why = pstrdup(rd_kafka_error_string(error));

		rd_kafka_error_destroy(error);
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream pipeline \"%s\": could not seek partition %d to "
							   "offset %lld: %s",
							   pipeline->name, partition, (long long) offset, why)));
	}
}

/*
 * Kafka reported the partition's fetch offset out of range (the partition
 * stopped).  Below the log's start: a gap, recorded once what precedes it
 * is (ss_archive_gaps_record); in range again (the log moved meanwhile): fetch
 * on.  Beyond the log's end the partition is to be held: returns true, and
 * *recreated_out says whether the topic's id changed (then every partition
 * is to be held).
 */
bool
ss_archive_gaps_out_of_range(PartitionBatch *b, int64 offset, bool *recreated_out)
{
	int64 low = -1, high = -1;
	rd_kafka_resp_err_t err;
	char *current;

	if (offset < 0)
		offset = b->next_offset;
	err = rd_kafka_query_watermark_offsets(consumer, pipeline->topic, b->partition, &low, &high,
										   KAFKA_TIMEOUT_MS);
	if (err)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream pipeline \"%s\": could not read the watermarks of "
							   "partition %d: %s",
							   pipeline->name, b->partition, rd_kafka_err2str(err)),
						errdetail("Its offset %lld was out of range; the worker restarts and "
								  "looks again.",
								  (long long) offset)));
	if (offset >= 0 && offset < low)
	{
		b->gap_reason = "retention";
		b->gap_from = offset;
		b->gap_to = low - 1;
		snprintf(b->gap_detail, sizeof(b->gap_detail),
				 "the partition's log starts at offset %lld: records deleted before they were "
				 "archived",
				 (long long) low);
		return false;
	}
	if (offset >= 0 && offset <= high)
	{
		seek_partition(b->partition, offset);
		return false;
	}
	current = ss_archive_topic_id(consumer, pipeline->topic, KAFKA_TIMEOUT_MS);
	recreated = current != NULL && topic_id != NULL && strcmp(current, topic_id) != 0;
	*recreated_out = recreated;
	return true;
}

/*
 * Skip the partition's pending gap, once its batch is empty and its objects
 * are recorded: record it, tell Kafka (for lag tools), fetch from its end.
 */
void
ss_archive_gaps_record(PartitionBatch *b)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *tp;
	int64 next = b->gap_to + 1;

	record_gap(b->partition, b->gap_from, b->gap_to, b->gap_reason, b->gap_detail);
	b->gap_reason = NULL;
	b->next_offset = next;
	b->recorded_offset = next;
	tp = rd_kafka_topic_partition_list_add(list, pipeline->topic, b->partition);
	tp->offset = next;
	tp->metadata = (void *) commit_mark;
	tp->metadata_size = strlen(commit_mark);
	rd_kafka_commit(consumer, list, 1);
	tp->metadata = NULL; /* ours, not librdkafka's to free */
	rd_kafka_topic_partition_list_destroy(list);
	seek_partition(b->partition, next);
}

/* Stop fetching the partition until an operator resets it. */
void
ss_archive_gaps_hold(PartitionBatch *b, bool topic_recreated)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(list, pipeline->topic, b->partition);
	rd_kafka_pause_partitions(consumer, list);
	rd_kafka_topic_partition_list_destroy(list);
	b->held = true;
	recreated = recreated || topic_recreated;
}

/* Say, where an operator looks, that partitions are held and what resumes them. */
void
ss_archive_gaps_announce_holds(const char *partitions)
{
	char text[480];
	const char *what = recreated ? "was deleted and created again"
								 : "has an offset stored beyond its partition's end";

	snprintf(text, sizeof(text),
			 "topic \"%s\" %s: partition(s) %s held; SELECT "
			 "stocks_stream.reset_pipeline_offsets('%s', start => 'earliest') (or 'latest', or a "
			 "timestamp) sets where they resume",
			 pipeline->topic, what, partitions, pipeline->name);
	ss_worker_status_set_state(status, recreated ? "topic re-created" : "offset beyond end");
	ss_worker_status_set_error(status, text);
	ereport(WARNING,
			(errmsg("stocks_stream pipeline \"%s\": topic \"%s\" %s; partition(s) %s held",
					pipeline->name, pipeline->topic, what, partitions),
			 errhint("SELECT stocks_stream.reset_pipeline_offsets('%s', start => 'earliest') (or "
					 "'latest', or a timestamp) sets where they resume.",
					 pipeline->name)));
}

/* The state of a worker holding partitions. */
const char *
ss_archive_gaps_hold_state(void)
{
	return recreated ? "topic re-created" : "offset beyond end";
}

/*
 * A committed offset as the worker may start from it: -1 when an archive
 * worker committed it for another incarnation of the topic.  *foreign: no
 * archive worker committed it (a tool or another consumer did).
 */
int64
ss_archive_gaps_committed(const rd_kafka_topic_partition_t *tp, bool *foreign)
{
	CommitMark mark = ss_archive_topic_read_mark(tp, topic_id);

	*foreign = (mark == COMMIT_FOREIGN);
	if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR || tp->offset < 0 || mark == COMMIT_OTHER_TOPIC_ID)
		return -1;
	return tp->offset;
}
