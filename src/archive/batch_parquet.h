/*
 * batch_parquet.h
 *	  A batch of a Parquet pipeline: Kafka messages as the rows of one
 *	  Parquet object.
 */
#ifndef STOCKS_STREAM_BATCH_PARQUET_H
#define STOCKS_STREAM_BATCH_PARQUET_H

#include <librdkafka/rdkafka.h>

#include "archive/batch.h"

extern size_t ss_batch_parquet_size(const rd_kafka_message_t *msg);
extern void ss_batch_parquet_append(PartitionBatch *batch, const char *topic,
									const rd_kafka_message_t *msg);
extern char *ss_batch_parquet_encode(PartitionBatch *batch, size_t *out_len);

#endif
