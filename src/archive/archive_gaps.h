/*
 * archive_gaps.h
 *	  The offsets an archive worker skips (recorded as gaps) and the
 *	  partitions it holds until an operator says where to start.
 */
#ifndef STOCKS_STREAM_ARCHIVE_GAPS_H
#define STOCKS_STREAM_ARCHIVE_GAPS_H

#include <librdkafka/rdkafka.h>

#include "archive/batch.h"
#include "core/pipeline_store.h"
#include "core/worker_status.h"

extern void ss_archive_gaps_configure(rd_kafka_t *consumer, PipelineConfig *pipeline,
									  WorkerStatus *status);
extern bool ss_archive_gaps_check_topic(void);
extern const char *ss_archive_gaps_commit_mark(void);
extern void ss_archive_gaps_group_moved(PartitionBatch *b, int64 stored, int64 committed);
extern bool ss_archive_gaps_out_of_range(PartitionBatch *b, int64 offset, bool *recreated);
extern void ss_archive_gaps_record(PartitionBatch *b);
extern void ss_archive_gaps_hold(PartitionBatch *b, bool recreated);
extern void ss_archive_gaps_announce_holds(const char *partitions);
extern const char *ss_archive_gaps_hold_state(void);
extern int64 ss_archive_gaps_committed(const rd_kafka_topic_partition_t *tp, bool *foreign);

#endif
