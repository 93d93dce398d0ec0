/*
 * kafka_properties_fuzz.c
 *	  Fuzzes the parser of stocks_stream.kafka_properties
 *	  (ss_kafka_parse_properties in src/kafka/kafka.c): the input is the
 *	  setting's text.  Each key and value it yields is checked against
 *	  what the parser promises (trimmed, no ';', no '=' in the key) instead
 *	  of going to rd_kafka_conf_set, whose checks are librdkafka's.  An
 *	  entry without '=' is an ERROR: a clean rejection.
 */
#include "postgres.h"

#include "kafka/kafka.h"

#include "harness.h"

static void
check_property(const char *key, const char *value, void *arg)
{
	size_t klen = strlen(key);
	int *count = arg;

	if (strchr(key, ';') != NULL || strchr(key, '=') != NULL || strchr(value, ';') != NULL ||
		(klen > 0 &&
		 (strchr(" \t\n", key[0]) != NULL || key[klen - 1] == ' ' || key[klen - 1] == '\t')) ||
		value[0] == ' ' || value[0] == '\t')
		abort();
	(*count)++;
}

void
fuzz_target(const uint8_t *data, size_t size)
{
	int count = 0;

	ss_kafka_parse_properties(fuzz_cstring(data, size), check_property, &count);
}
