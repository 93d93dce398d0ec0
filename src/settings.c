/*
 * settings.c
 *	  Defines every configuration parameter (GUC) of stocks_stream.
 *
 * Connection settings are PGC_SIGHUP: workers re-read them on SIGHUP.
 * Anything that can hold a credential (the S3 keys, librdkafka pass-through
 * properties that may carry SASL passwords) is GUC_SUPERUSER_ONLY and
 * GUC_NO_SHOW_ALL, so ordinary users see it neither in SHOW nor pg_settings,
 * and the extension never writes its value to the log.
 */
#include "postgres.h"

#include "storage/fd.h"
#include "utils/guc.h"

#include "settings.h"

char *ss_kafka_brokers = NULL;
char *ss_kafka_properties = NULL;
char *ss_s3_endpoint = NULL;
char *ss_s3_region = NULL;
char *ss_s3_access_key = NULL;
char *ss_s3_secret_key = NULL;
bool ss_s3_path_style = true;
int ss_s3_timeout_ms = 30000;
char *ss_finnhub_api_key = NULL;
char *ss_finnhub_api_key_file = NULL;
char *ss_finnhub_url = NULL;
char *ss_finnhub_ws_url = NULL;
char *ss_database = NULL;
int ss_max_workers = 16;
int ss_launcher_naptime_ms = 1000;
int ss_retry_max_backoff_ms = 30000;

#define SECRET_FLAGS (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL)

void
ss_define_settings(void)
{
	DefineCustomStringVariable("stocks_stream.kafka_brokers",
							   "Kafka bootstrap servers (host:port,...).", NULL, &ss_kafka_brokers,
							   "127.0.0.1:9092", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.kafka_properties",
		"Extra librdkafka properties as key=value pairs separated by ';' (SASL, TLS, tuning).",
		"Superuser-only: it may hold credentials.", &ss_kafka_properties, "", PGC_SIGHUP,
		SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.s3_endpoint",
		"S3 endpoint URL, e.g. http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com.", NULL,
		&ss_s3_endpoint, "http://127.0.0.1:9000", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.s3_region", "S3 region used for SigV4 signing.", NULL,
							   &ss_s3_region, "us-east-1", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.s3_access_key", "S3 access key id.",
							   "Superuser-only.", &ss_s3_access_key, "", PGC_SIGHUP, SECRET_FLAGS,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.s3_secret_key", "S3 secret access key.",
							   "Superuser-only; never shown to other users nor logged.",
							   &ss_s3_secret_key, "", PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomBoolVariable(
		"stocks_stream.s3_path_style",
		"Address buckets as endpoint/bucket/key (MinIO) instead of bucket.endpoint/key.", NULL,
		&ss_s3_path_style, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.s3_timeout_ms", "Timeout of one S3 request.", NULL,
							&ss_s3_timeout_ms, 30000, 1000, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL,
							NULL, NULL);
	DefineCustomStringVariable("stocks_stream.finnhub_api_key",
							   "Finnhub API key for the finnhub_quotes and finnhub_trades sources.",
							   "Superuser-only; never shown to other users nor logged.",
							   &ss_finnhub_api_key, "", PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.finnhub_api_key_file",
		"File holding the Finnhub API key (used when finnhub_api_key is empty).", NULL,
		&ss_finnhub_api_key_file, "", PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.finnhub_url", "Base URL of Finnhub's REST API.", NULL,
							   &ss_finnhub_url, "https://finnhub.io/api/v1", PGC_SIGHUP, 0, NULL,
							   NULL, NULL);
	DefineCustomStringVariable("stocks_stream.finnhub_ws_url",
							   "URL of Finnhub's trade WebSocket (the token is added as ?token=).",
							   NULL, &ss_finnhub_ws_url, "wss://ws.finnhub.io", PGC_SIGHUP, 0, NULL,
							   NULL, NULL);
	DefineCustomStringVariable("stocks_stream.database",
							   "Database the launcher and workers connect to.", NULL, &ss_database,
							   "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.max_workers",
							"Maximum number of archive workers across all pipelines.", NULL,
							&ss_max_workers, 16, 1, 256, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.launcher_naptime", "How often the launcher checks the pipelines table.",
		NULL, &ss_launcher_naptime_ms, 1000, 100, 60000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.retry_max_backoff",
							"Upper bound of the exponential backoff when S3 or Kafka fail.", NULL,
							&ss_retry_max_backoff_ms, 30000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("stocks_stream");
}

/*
 * The Finnhub API key: the setting, else the first line of the key file,
 * else "" (no account).  The result is palloc'd in the current context.
 */
char *
ss_finnhub_key(void)
{
	FILE *f;
	char buf[256];

	if (ss_finnhub_api_key[0] != '\0' || ss_finnhub_api_key_file[0] == '\0')
		return pstrdup(ss_finnhub_api_key);
	f = AllocateFile(ss_finnhub_api_key_file, "r");
	if (f == NULL)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not open stocks_stream.finnhub_api_key_file \"%s\": %m",
							   ss_finnhub_api_key_file)));
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	FreeFile(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return pstrdup(buf);
}
