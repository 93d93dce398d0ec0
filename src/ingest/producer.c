/*
 * producer.c
 *	  Kafka producer for the ingest workers.
 *
 * The producer is idempotent (enable.idempotence, acks=all), so retries
 * inside librdkafka never duplicate or reorder a partition.  Every message
 * carries the key (the symbol) and two headers: the source's name and the
 * schema version; no record type header, since each header costs
 * allocations per message (bench/README.md) and the loader tells quotes
 * from trades by their shape.  Delivery reports are served by
 * rd_kafka_poll on the worker's main thread and counted: a message counts
 * as produced only once the broker acknowledged it; a failed delivery is
 * counted and its error kept for source_status.  When librdkafka's local
 * queue is full (Kafka slow or down) ss_producer_send returns false and
 * the caller stops fetching until the queue drains, so nothing is buffered
 * without bound.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "ingest/producer.h"
#include "kafka/kafka.h"

#define SCHEMA_VERSION "1"

static rd_kafka_t *producer = NULL;
static rd_kafka_topic_t *topic_handle = NULL;
static char *source_header = NULL;
static ProducerCounts counts;

/* Served by rd_kafka_poll on the main thread. */
static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		counts.delivered++;
	else
	{
		counts.failed++;
		snprintf(counts.last_error, sizeof(counts.last_error), "Kafka delivery failed: %s",
				 rd_kafka_err2str(msg->err));
	}
}

/*
 * The last Kafka error; after a refusal (SASL or TLS, whose error names
 * what to fix) the "brokers are down" that follow leave it in place.
 */
static void
record_error(KafkaErrorKind kind, const char *message)
{
	static bool refused = false;

	if (refused && kind == KAFKA_ERROR_DOWN)
		return;
	refused = (kind == KAFKA_ERROR_SASL || kind == KAFKA_ERROR_TLS);
	strlcpy(counts.last_error, message, sizeof(counts.last_error));
}

void
ss_producer_open(const char *source_name, const char *topic)
{
	static const KafkaSetting defaults[] = {
		{"linger.ms", "20"},
		{"batch.num.messages", "10000"},
		{"queue.buffering.max.messages", "200000"},
		{"queue.buffering.max.kbytes", "65536"},
		/* a broker outage shorter than this loses nothing */
		{"message.timeout.ms", "600000"},
		{NULL, NULL},
	};
	rd_kafka_conf_t *conf = ss_kafka_conf_new(record_error, defaults);

	ss_kafka_conf_set(conf, "enable.idempotence", "true");
	ss_kafka_conf_set(conf, "acks", "all");
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	producer = ss_kafka_new(RD_KAFKA_PRODUCER, conf);
	topic_handle = rd_kafka_topic_new(producer, topic, NULL);
	if (topic_handle == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream: could not create Kafka topic handle for \"%s\": %s",
							   topic, rd_kafka_err2str(rd_kafka_last_error()))));
	source_header = MemoryContextStrdup(TopMemoryContext, source_name);
}

/*
 * Queue one message, with timestamp_ms (unix milliseconds) as its Kafka
 * timestamp, or 0 to have librdkafka stamp it with the current time.
 * Returns false when the local queue is full; the caller keeps the message
 * and tries again after polling.
 */
bool
ss_producer_send(const char *key, const char *payload, size_t len, int64 timestamp_ms)
{
	rd_kafka_resp_err_t err;

	err = rd_kafka_producev(
		producer, RD_KAFKA_V_RKT(topic_handle), RD_KAFKA_V_KEY(key, strlen(key)),
		RD_KAFKA_V_VALUE((void *) payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_HEADER("source", source_header, -1),
		RD_KAFKA_V_HEADER("schema_version", SCHEMA_VERSION, -1), RD_KAFKA_V_END);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return false;
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		counts.failed++;
		snprintf(counts.last_error, sizeof(counts.last_error), "Kafka produce failed: %s",
				 rd_kafka_err2str(err));
	}
	return true;
}

void
ss_producer_poll(int timeout_ms)
{
	rd_kafka_poll(producer, timeout_ms);
}

int
ss_producer_in_flight(void)
{
	return rd_kafka_outq_len(producer);
}

/* Hand over the counts accumulated since the last call, and reset them. */
void
ss_producer_take_counts(ProducerCounts *out)
{
	*out = counts;
	counts.delivered = 0;
	counts.failed = 0;
	counts.last_error[0] = '\0';
}
