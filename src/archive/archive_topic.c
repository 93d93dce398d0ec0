/*
 * archive_topic.c
 *	  Which incarnation of a Kafka topic is archived.
 *
 * A topic deleted and created again under the same name starts its offsets
 * at 0 again.  Kafka tells the two apart by the topic id it gives each
 * (KIP-516), which the archive worker compares with the one its pipeline
 * recorded (pipeline_topics): on a new id it holds the partitions until
 * the operator says where to start (reset_pipeline_offsets).  The objects
 * of an incarnation after the first a pipeline saw are keyed under a topic
 * folder of their own, <topic>~<topic id>: '~' is never part of a Kafka
 * topic name and needs no escaping in a URL, so those keys can collide with
 * no other topic's, and the loaders see a source topic of its own (silver
 * never takes the new topic's offset 0 for the old one's).
 *
 * The archive workers mark the offsets they commit to the consumer group
 * (the commit's metadata, "stocks_stream:<topic id>"), so a worker that
 * finds the group ahead of its stored offset can tell another instance of
 * its pipeline, which archived those offsets, from a tool or another
 * consumer that moved the group's offset: only the latter skips records.
 */
#include "postgres.h"

#include "archive/archive_topic.h"

#define COMMIT_MARK_PREFIX "stocks_stream:"

/* Kafka's text form of a topic id: URL-safe base64 of its 16 bytes, without padding. */
static char *
topic_id_text(uint64 msb, uint64 lsb)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8 bytes[18] = {0};
	char *out = palloc(23);
	int n = 0;

	for (int i = 0; i < 8; i++)
	{
		bytes[i] = (uint8) (msb >> (56 - 8 * i));
		bytes[8 + i] = (uint8) (lsb >> (56 - 8 * i));
	}
	/* 16 bytes: five groups of three, then one byte (two characters) */
	for (int i = 0; i < 18 && n < 22; i += 3)
	{
		uint32 v = ((uint32) bytes[i] << 16) | ((uint32) bytes[i + 1] << 8) | bytes[i + 2];

		out[n++] = alphabet[(v >> 18) & 63];
		out[n++] = alphabet[(v >> 12) & 63];
		if (n < 22)
			out[n++] = alphabet[(v >> 6) & 63];
		if (n < 22)
			out[n++] = alphabet[v & 63];
	}
	out[22] = '\0';
	return out;
}

#if RD_KAFKA_VERSION >= 0x020300ff
/*
 * Kafka's id of the topic, as kafka-topics --describe prints it; NULL when
 * the topic does not exist.  Kafka not answering is an error.
 */
char *
ss_archive_topic_id(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
	rd_kafka_TopicCollection_t *topics = rd_kafka_TopicCollection_of_topic_names(&topic, 1);
	rd_kafka_AdminOptions_t *options =
		rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
	rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	const rd_kafka_DescribeTopics_result_t *result;
	const rd_kafka_TopicDescription_t **descs;
	size_t ndescs = 0;
	char errstr[256];
	char *id = NULL;
	char *error = NULL;

	(void) rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, errstr, sizeof(errstr));
	rd_kafka_DescribeTopics(rk, topics, options, queue);
	ev = rd_kafka_queue_poll(queue, timeout_ms + 1000);
	result = ev ? rd_kafka_event_DescribeTopics_result(ev) : NULL;
	if (ev == NULL)
		error = pstrdup("no answer");
	else if (rd_kafka_event_error(ev))
		error = pstrdup(rd_kafka_event_error_string(ev));
	else if (result != NULL)
	{
		descs = rd_kafka_DescribeTopics_result_topics(result, &ndescs);
		if (ndescs == 1 && rd_kafka_error_code(rd_kafka_TopicDescription_error(descs[0])) ==
							   RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			const rd_kafka_Uuid_t *uuid = rd_kafka_TopicDescription_topic_id(descs[0]);

			id = topic_id_text((uint64) rd_kafka_Uuid_most_significant_bits(uuid),
							   (uint64) rd_kafka_Uuid_least_significant_bits(uuid));
		}
		else if (ndescs == 1 && rd_kafka_error_code(rd_kafka_TopicDescription_error(descs[0])) !=
									RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			error = pstrdup(rd_kafka_error_string(rd_kafka_TopicDescription_error(descs[0])));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(queue);
	rd_kafka_AdminOptions_destroy(options);
	rd_kafka_TopicCollection_destroy(topics);
	if (error != NULL)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream: could not read the id of Kafka topic \"%s\": %s",
							   topic, error)));
	return id;
}
#else
/* A librdkafka before 2.3 cannot ask for topic ids. */
char *
ss_archive_topic_id(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
	return NULL;
}
#endif

/*
 * The topic folder of an incarnation's object keys: the topic itself for
 * the first a pipeline archives, <topic>~<topic id> for a later one.
 */
char *
ss_archive_topic_key_topic(const char *topic, const char *topic_id)
{
	return topic_id ? psprintf("%s~%s", topic, topic_id) : pstrdup(topic);
}

/* The metadata an archive worker commits its offsets with. */
char *
ss_archive_topic_commit_mark(const char *topic_id)
{
	return psprintf(COMMIT_MARK_PREFIX "%s", topic_id ? topic_id : "");
}

/* Who committed this offset: an archive worker of this incarnation, of another, or not one. */
CommitMark
ss_archive_topic_read_mark(const rd_kafka_topic_partition_t *committed, const char *topic_id)
{
	size_t prefix = strlen(COMMIT_MARK_PREFIX);
	const char *mark = committed->metadata;
	size_t len = committed->metadata_size;

	if (mark == NULL || len < prefix || memcmp(mark, COMMIT_MARK_PREFIX, prefix) != 0)
		return COMMIT_FOREIGN;
	mark += prefix;
	len -= prefix;
	/* either side not knowing the id (an older client): take it as this one */
	if (len == 0 || topic_id == NULL ||
		(len == strlen(topic_id) && memcmp(mark, topic_id, len) == 0))
		return COMMIT_ARCHIVED;
	return COMMIT_OTHER_TOPIC_ID;
}
