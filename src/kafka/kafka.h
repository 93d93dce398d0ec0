/*
 * kafka.h
 *	  Creating librdkafka clients from the extension's settings.
 */
#ifndef STOCKS_STREAM_KAFKA_H
#define STOCKS_STREAM_KAFKA_H

#include <librdkafka/rdkafka.h>

/* what a Kafka error means for a client's user */
typedef enum KafkaErrorKind
{
	KAFKA_ERROR_OTHER,
	KAFKA_ERROR_DOWN, /* brokers unreachable (a refusal is followed by these too) */
	KAFKA_ERROR_SASL, /* the brokers refused our SASL credentials */
	KAFKA_ERROR_TLS	  /* a TLS check failed (the broker's certificate, or ours) */
} KafkaErrorKind;

typedef void (*KafkaErrorHook)(KafkaErrorKind kind, const char *message);
typedef void (*KafkaPropertyCallback)(const char *key, const char *value, void *arg);

/* one librdkafka property; arrays of them end with {NULL, NULL} */
typedef struct KafkaSetting
{
	const char *name;
	const char *value;
} KafkaSetting;

extern rd_kafka_conf_t *ss_kafka_conf_new(KafkaErrorHook on_error, const KafkaSetting *defaults);
extern void ss_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value);
extern rd_kafka_t *ss_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf);
extern KafkaErrorKind ss_kafka_error_kind(rd_kafka_resp_err_t err, const char *reason);
extern void ss_kafka_parse_properties(const char *properties, KafkaPropertyCallback cb, void *arg);

#endif
