/*
 * producer.h
 *	  The ingest workers' Kafka producer: idempotent, every delivery
 *	  report counted.
 */
#ifndef STOCKS_STREAM_PRODUCER_H
#define STOCKS_STREAM_PRODUCER_H

typedef struct ProducerCounts
{
	int64 delivered;
	int64 failed;
	char last_error[256]; /* "" when none since the last take */
} ProducerCounts;

extern void ss_producer_open(const char *source_name, const char *topic);
extern bool ss_producer_send(const char *key, const char *payload, size_t len, int64 timestamp_ms);
extern void ss_producer_poll(int timeout_ms);
extern int ss_producer_in_flight(void);
extern void ss_producer_take_counts(ProducerCounts *counts);

#endif
