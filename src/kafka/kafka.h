/*
 * kafka.h
 *	  Creating librdkafka clients from the extension's settings.
 */
#ifndef STOCKS_STREAM_KAFKA_H
#define STOCKS_STREAM_KAFKA_H

#include <librdkafka/rdkafka.h>

typedef void (*KafkaErrorHook)(const char *message);
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
extern void ss_kafka_parse_properties(const char *properties, KafkaPropertyCallback cb, void *arg);

#endif
