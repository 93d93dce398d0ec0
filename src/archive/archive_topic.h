/*
 * archive_topic.h
 *	  Which incarnation of a Kafka topic is archived: Kafka's topic id, the
 *	  topic folder of its objects' keys, and the mark the archive workers
 *	  leave on the consumer group's committed offsets.
 */
#ifndef STOCKS_STREAM_ARCHIVE_TOPIC_H
#define STOCKS_STREAM_ARCHIVE_TOPIC_H

#include <librdkafka/rdkafka.h>

/* What a committed offset's metadata says about who committed it. */
typedef enum CommitMark
{
	COMMIT_FOREIGN,		  /* not an archive worker (a tool, another consumer) */
	COMMIT_ARCHIVED,	  /* an archive worker, after recording this incarnation's objects */
	COMMIT_OTHER_TOPIC_ID /* an archive worker, of another incarnation of the topic */
} CommitMark;

extern char *ss_archive_topic_id(rd_kafka_t *rk, const char *topic, int timeout_ms);
extern char *ss_archive_topic_key_topic(const char *topic, const char *topic_id);
extern char *ss_archive_topic_commit_mark(const char *topic_id);
extern CommitMark ss_archive_topic_read_mark(const rd_kafka_topic_partition_t *committed,
											 const char *topic_id);

#endif
