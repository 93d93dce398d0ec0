/*
 * kafka.c
 *	  Builds librdkafka configurations and handles from the settings.
 *
 * librdkafka runs its own threads, which must never call a Postgres API.
 * Its log lines are therefore queued (log.queue) and written by the main
 * thread when it polls; its error callback is likewise served from poll on
 * the main thread.  Every rd_kafka_conf_set and rd_kafka_new result is
 * checked; a property's value is never echoed, as it may be a password.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "core/secrets.h"
#include "core/settings.h"
#include "kafka/kafka.h"

static KafkaErrorHook error_hook = NULL;

void
ss_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream: invalid Kafka property \"%s\": %s", name, errstr),
						errhint("Check stocks_stream.kafka_properties.")));
}

/* Runs on the main thread, from rd_kafka_*poll (log.queue is on). */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	ereport(level <= 4 ? LOG : DEBUG1, (errmsg_internal("stocks_stream: kafka %s: %s", fac, buf)));
}

/*
 * What an error means: a refusal of our SASL credentials, a failed TLS
 * check (librdkafka reports a certificate it refuses as a transport error
 * in the SSL handshake), brokers out of reach, or something else.  After a
 * refusal librdkafka retries with its reconnect backoff, and nothing moves
 * until the settings are fixed.
 */
KafkaErrorKind
ss_kafka_error_kind(rd_kafka_resp_err_t err, const char *reason)
{
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		return KAFKA_ERROR_SASL;
	if (err == RD_KAFKA_RESP_ERR__SSL ||
		(err == RD_KAFKA_RESP_ERR__TRANSPORT && strstr(reason, "state SSL_HANDSHAKE") != NULL))
		return KAFKA_ERROR_TLS;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT)
		return KAFKA_ERROR_DOWN;
	return KAFKA_ERROR_OTHER;
}

/* What to fix after a refusal (which check failed is in the reason). */
static const char *
refusal_hint(KafkaErrorKind kind)
{
	if (kind == KAFKA_ERROR_SASL)
		return " (hint: check kafka.sasl.password in stocks_stream.secrets_file and sasl.username "
			   "in stocks_stream.kafka_properties, then reload)";
	if (kind == KAFKA_ERROR_TLS)
		return " (hint: check that ssl.ca.location in stocks_stream.kafka_properties names the CA "
			   "that signed the brokers' certificates, and stocks_stream.kafka_brokers hosts they "
			   "name, then reload)";
	return "";
}

/* Runs on the main thread, from rd_kafka_*poll. */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaErrorKind kind = ss_kafka_error_kind((rd_kafka_resp_err_t) err, reason);
	char msg[800];

	/* the reason bounded, so the hint fits in a worker's last_error (512 bytes) */
	snprintf(msg, sizeof(msg), "Kafka: %s: %.*s%s", rd_kafka_err2name((rd_kafka_resp_err_t) err),
			 kind == KAFKA_ERROR_SASL || kind == KAFKA_ERROR_TLS ? 300 : 600, reason,
			 refusal_hint(kind));
	ereport(LOG, (errmsg_internal("stocks_stream: %s", msg)));
	if (error_hook != NULL)
		error_hook(kind, msg);
}

/*
 * Call cb with each key and value of "key=value;key=value" pass-through
 * properties.  Whitespace around keys and values is trimmed; empty entries
 * are skipped.  Apart from rd_kafka_conf_set so the parsing can be fuzzed
 * (fuzz/kafka_properties_fuzz.c).
 */
void
ss_kafka_parse_properties(const char *properties, KafkaPropertyCallback cb, void *arg)
{
	char *copy = pstrdup(properties);
	char *save = NULL;

	for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save))
	{
		char *eq = strchr(item, '=');
		char *key = item;
		char *value;

		while (*key == ' ' || *key == '\t' || *key == '\n')
			key++;
		if (*key == '\0')
			continue;
		if (eq == NULL)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("stocks_stream.kafka_properties entry \"%s\" has no '='", key),
							errhint("Write entries as key=value separated by ';'.")));
		*eq = '\0';
		value = eq + 1;
		for (char *end = eq - 1; end >= key && (*end == ' ' || *end == '\t'); end--)
			*end = '\0';
		while (*value == ' ' || *value == '\t')
			value++;
		cb(key, value, arg);
	}
	pfree(copy);
}

/*
 * A librdkafka property from stocks_stream.kafka_properties or the secrets
 * file (kafka.<name> = value).
 */
static void
apply_property(const char *name, const char *value, void *conf)
{
	ss_kafka_conf_set((rd_kafka_conf_t *) conf, name, value);
}

/*
 * Refuse properties that turn the brokers' certificate checks off: a
 * private CA is trusted by naming it (ssl.ca.location), never by checking
 * nothing.  Read back from the configuration, so any spelling of the value
 * is caught, whether it came from the setting or the secrets file.
 */
static void
refuse_unverified(rd_kafka_conf_t *conf)
{
	static const KafkaSetting required[] = {
		{"enable.ssl.certificate.verification", "true"},
		{"ssl.endpoint.identification.algorithm", "https"},
	};

	for (size_t i = 0; i < lengthof(required); i++)
	{
		char value[64];
		size_t len = sizeof(value);

		if (rd_kafka_conf_get(conf, required[i].name, value, &len) == RD_KAFKA_CONF_OK &&
			strcmp(value, required[i].value) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stocks_stream.kafka_properties: %s=%s turns off a TLS check of the "
							"brokers' certificates",
							required[i].name, value),
					 errhint("Remove it: a broker behind a private CA is trusted by naming the CA "
							 "in ssl.ca.location.")));
	}
}

/*
 * A new client configuration: the stack's brokers, then the caller's tunable
 * defaults, then the operator's stocks_stream.kafka_properties and the
 * kafka.* entries of the secrets file, which may override any of those.  What the caller sets
 * afterwards (idempotence, group, manual commits) is not overridable: exactly-once depends on it.
 */
rd_kafka_conf_t *
ss_kafka_conf_new(KafkaErrorHook on_error, const KafkaSetting *defaults)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	error_hook = on_error;
	ss_kafka_conf_set(conf, "bootstrap.servers", ss_settings_kafka_brokers);
	ss_kafka_conf_set(conf, "client.id", "stocks_stream");
	for (; defaults && defaults->name; defaults++)
		ss_kafka_conf_set(conf, defaults->name, defaults->value);
	ss_kafka_parse_properties(ss_settings_kafka_properties, apply_property, conf);
	ss_secrets_foreach("kafka.", apply_property, conf);
	refuse_unverified(conf);
	ss_kafka_conf_set(conf, "log.queue", "true");
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	return conf;
}

rd_kafka_t *
ss_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char errstr[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));

	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("stocks_stream: could not create Kafka client: %s", errstr)));
	}
	/* route log lines to the main queue, served by our poll calls */
	rd_kafka_set_log_queue(rk, NULL);
	return rk;
}
