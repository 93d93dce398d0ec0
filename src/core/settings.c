/*
 * settings.c
 *	  Defines every configuration parameter (GUC) of stocks_stream.
 *
 * Connection settings are PGC_SIGHUP: workers re-read them on SIGHUP.
 * No setting holds a credential: the S3 and Finnhub keys live in the file
 * stocks_stream.secrets_file names (secrets.c), because members of
 * pg_read_all_settings can read any setting.  librdkafka pass-through
 * properties stay GUC_SUPERUSER_ONLY and GUC_NO_SHOW_ALL; passwords among
 * them belong in the secrets file too.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "core/pg_compat.h"
#include "core/settings.h"

char *ss_settings_kafka_brokers = NULL;
char *ss_settings_kafka_properties = NULL;
char *ss_settings_s3_endpoint = NULL;
char *ss_settings_s3_region = NULL;
bool ss_settings_s3_path_style = true;
char *ss_settings_s3_ca_file = NULL;
char *ss_settings_secrets_file = NULL;
char *ss_settings_finnhub_url = NULL;
char *ss_settings_finnhub_ws_url = NULL;
char *ss_settings_database = NULL;
int ss_settings_max_workers = 16;
int ss_settings_launcher_naptime_ms = 1000;
int ss_settings_retry_max_backoff_ms = 30000;
int ss_settings_min_event_year = 2000;
int ss_settings_s3_gets_in_flight = 32;
int ss_settings_archive_requests_in_flight = 16;
int ss_settings_load_buffer_kb = 65536;
int ss_settings_progress_interval_ms = 10000;
int ss_settings_ws_max_message_kb = 1024;
int ss_settings_ws_silence_timeout_ms = 90000;
int ss_settings_max_object_kb = 262144;
int ss_settings_s3_max_list_pages = 10000;
int ss_settings_quarantine_raw_max = 4096;
int ss_settings_event_time_window_min = 10080;
int ss_settings_load_retry_backoff_ms = 60000;
int ss_settings_load_max_attempts = 10;
double ss_settings_test_clock = 0;
int ss_settings_lake_row_group_rows = 131072;
int ss_settings_lake_object_kb = 65536;
char *ss_settings_test_crash_point = NULL;

#define SECRET_FLAGS (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL)

/*
 * stocks_stream.s3_timeout, and stocks_stream.s3_timeout_ms, its name
 * until 0.4.0 (a GUC's unit lives in its definition, never in its name:
 * src/README.md).  The old name still works, so that nothing a
 * postgresql.conf sets is silently lost: the postmaster logs a WARNING
 * naming the new setting each time it loads a configuration that sets the
 * old one, whose value is used while the new one is not set anywhere.
 * SHOW stocks_stream.s3_timeout shows the timeout in use.
 */
static int s3_timeout_ms = 30000;
static int deprecated_s3_timeout_ms = -1; /* -1: not set */

static bool
check_deprecated_s3_timeout(int *newval, void **extra, GucSource source)
{
	if (*newval == -1 || *newval >= 1000)
		return true;
	GUC_check_errdetail("stocks_stream.s3_timeout_ms is at least 1s, or -1 for not set.");
	return false;
}

static void
assign_deprecated_s3_timeout(int newval, void *extra)
{
	/* once per load of the configuration, by the postmaster alone */
	if (newval == -1 || IsUnderPostmaster)
		return;
	ereport(WARNING, (errcode(ERRCODE_WARNING_DEPRECATED_FEATURE),
					  errmsg("stocks_stream.s3_timeout_ms is deprecated: it is now "
							 "stocks_stream.s3_timeout"),
					  errdetail("Its value is used while stocks_stream.s3_timeout is not set."),
					  errhint("Rename the setting in postgresql.conf, or ALTER SYSTEM SET "
							  "stocks_stream.s3_timeout and RESET stocks_stream.s3_timeout_ms.")));
}

/* true when no configuration source sets stocks_stream.s3_timeout */
static bool
s3_timeout_unset(void)
{
	static struct config_generic *guc = NULL;

	if (guc == NULL)
	{
		int n;
		struct config_generic **vars = ss_pg_compat_guc_variables(&n);

		for (int i = 0; i < n && guc == NULL; i++)
			if (strcmp(vars[i]->name, "stocks_stream.s3_timeout") == 0)
				guc = vars[i];
		Assert(guc != NULL);
	}
	return guc->source == PGC_S_DEFAULT;
}

/* Milliseconds one S3 request may take. */
int
ss_settings_s3_timeout_ms(void)
{
	if (deprecated_s3_timeout_ms != -1 && s3_timeout_unset())
		return deprecated_s3_timeout_ms;
	return s3_timeout_ms;
}

/* the timeout in use, in the largest unit that divides it (as SHOW does) */
static const char *
show_s3_timeout(void)
{
	static const struct
	{
		const char *unit;
		int ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"min", 60000}, {"s", 1000}, {"ms", 1}};
	static char buf[32];
	int ms = ss_settings_s3_timeout_ms();

	for (size_t i = 0; i < lengthof(units); i++)
		if (ms % units[i].ms == 0)
		{
			snprintf(buf, sizeof(buf), "%d%s", ms / units[i].ms, units[i].unit);
			break;
		}
	return buf;
}

/*
 * stocks_stream.test_clock: for tests only (core/clock.c).  Superuser-only
 * and out of SHOW ALL and the sample file; PGC_SIGHUP, so it is written
 * with ALTER SYSTEM, which a non-superuser may do only when granted; even
 * then a backend of a non-superuser refuses it (the workers, connected as
 * the bootstrap superuser, and the postmaster take it).
 */
static bool
check_test_clock(double *newval, void **extra, GucSource source)
{
	if (*newval == 0 || !IsUnderPostmaster || !AmRegularBackendProcess() ||
		!OidIsValid(GetSessionUserId()) || GetSessionUserIsSuperuser())
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("stocks_stream.test_clock is for tests: only a superuser sets it");
	return false;
}

static void
define_test_clock(void)
{
	DefineCustomRealVariable(
		"stocks_stream.test_clock",
		"For tests only: the time the archive workers' flush rules read, in seconds since 1970.",
		"0 (the default) is the real time.  Set, the workers' clock stands at this time until "
		"it is set again.",
		&ss_settings_test_clock, 0, 0, 1e11, PGC_SIGHUP,
		GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, check_test_clock, NULL, NULL);
}

/*
 * Tiering silver days to the lake (docs/lake.md): row groups and objects,
 * bounded so an exporting backend holds at most one object and one row
 * group; and the hidden crash point of the crash tests (superuser-only).
 */
static void
define_lake(void)
{
	DefineCustomIntVariable(
		"stocks_stream.lake_row_group_rows", "Rows in a row group of a tiered silver object.",
		"The exporting backend holds one row group's values before encoding them.",
		&ss_settings_lake_row_group_rows, 131072, 100, 1048576, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.lake_object_size", "Size at which a tiered silver object is closed.",
		"A day's rows go into objects of about this size (one more row group at most); the "
		"next rows start the next object.",
		&ss_settings_lake_object_kb, 65536, 64, 65536, PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.test_crash_point",
		"For tests only: the point of tier_to_lake() at which the backend kills itself.", NULL,
		&ss_settings_test_crash_point, "", PGC_SUSET,
		GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}

/* Settings renamed, whose old names still work (and say so in a WARNING). */
static void
define_deprecated(void)
{
	DefineCustomIntVariable(
		"stocks_stream.s3_timeout_ms", "Deprecated name of stocks_stream.s3_timeout.",
		"Used while stocks_stream.s3_timeout is not set; -1 is not set.", &deprecated_s3_timeout_ms,
		-1, -1, 3600000, PGC_SIGHUP, GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
		check_deprecated_s3_timeout, assign_deprecated_s3_timeout, NULL);
}

/*
 * Bounds on what Finnhub, S3 and Kafka send: every buffer and loop that
 * outside bytes can grow has one (docs/configuration.md, "Limits").
 */
static void
define_limits(void)
{
	DefineCustomIntVariable(
		"stocks_stream.ws_max_message", "Largest Finnhub WebSocket message a trades source takes.",
		"A longer message is dropped, counted and reported, and the connection is made again.",
		&ss_settings_ws_max_message_kb, 1024, 1, 65536, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.ws_silence_timeout",
		"How long a Finnhub WebSocket may stay silent before it is taken for dead.",
		"Finnhub pings an open stream; a connection that brings nothing for this long "
		"(half-open) is closed and made again.  0 never.",
		&ss_settings_ws_silence_timeout_ms, 90000, 0, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL,
		NULL);
	DefineCustomIntVariable(
		"stocks_stream.max_object_size",
		"Largest object, once inflated, that load_bronze(), load_bronze_prefix() and "
		"tier_to_lake()'s verification read.",
		"A larger object (a gzip bomb, or a Parquet page that claims to inflate beyond it) "
		"is marked failed with the reason; it never takes the backend's memory.",
		&ss_settings_max_object_kb, 262144, 1024, MAX_KILOBYTES, PGC_SUSET, GUC_UNIT_KB, NULL, NULL,
		NULL);
	DefineCustomIntVariable(
		"stocks_stream.s3_max_list_pages",
		"Most S3 listing pages (of 1,000 keys) one listing may follow.",
		"A listing that never ends (or repeats its continuation token) stops with an error.",
		&ss_settings_s3_max_list_pages, 10000, 1, 1000000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.quarantine_raw_max",
							"Most bytes of a refused line the quarantine keeps.",
							"A longer line keeps its first bytes, its length and its SHA-256.",
							&ss_settings_quarantine_raw_max, 4096, 0, 1048576, PGC_SUSET,
							GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.event_time_window",
		"How far a record's event time may lie from the time its object was written.",
		"The object's time is its first Kafka record's timestamp (the dt=/hour= of its "
		"key); a record outside the window is quarantined, so no writer to the topic can "
		"make partitions of any day it likes.  0 turns the check off.",
		&ss_settings_event_time_window_min, 10080, 0, 60 * 24 * 366 * 100, PGC_SUSET, GUC_UNIT_MIN,
		NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.load_retry_backoff",
							"How long an object that failed to load waits before its first retry.",
							"The wait doubles with each failed attempt.",
							&ss_settings_load_retry_backoff_ms, 60000, 0, 86400000, PGC_SUSET,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.load_max_attempts", "Most attempts to load an object that keeps failing.",
		"After them it is no longer retried and is counted in api.pipeline_health; "
		"stocks_stream.retry_failed_objects() makes it pending again.",
		&ss_settings_load_max_attempts, 10, 1, 1000, PGC_SUSET, 0, NULL, NULL, NULL);
}

void
ss_settings_define(void)
{
	DefineCustomStringVariable(
		"stocks_stream.kafka_brokers", "Kafka bootstrap servers (host:port,...).", NULL,
		&ss_settings_kafka_brokers, "127.0.0.1:9092", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.kafka_properties",
		"Extra librdkafka properties as key=value pairs separated by ';' (SASL, TLS, tuning).",
		"Superuser-only: it may hold credentials.", &ss_settings_kafka_properties, "", PGC_SIGHUP,
		SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.s3_endpoint",
		"S3 endpoint URL, e.g. http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com.", NULL,
		&ss_settings_s3_endpoint, "http://127.0.0.1:9000", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.s3_region", "S3 region used for SigV4 signing.", NULL,
							   &ss_settings_s3_region, "us-east-1", PGC_SIGHUP, 0, NULL, NULL,
							   NULL);
	DefineCustomBoolVariable(
		"stocks_stream.s3_path_style",
		"Address buckets as endpoint/bucket/key (MinIO) instead of bucket.endpoint/key.", NULL,
		&ss_settings_s3_path_style, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.s3_ca_file",
		"PEM file of the CA certificates the S3 client trusts for an https:// endpoint.",
		"Empty (the default) is the system's trust store.  A relative path is relative to "
		"the data directory.  Certificate and host name verification are always on.",
		&ss_settings_s3_ca_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.s3_timeout", "Timeout of one S3 request.", NULL,
							&s3_timeout_ms, 30000, 1000, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL,
							NULL, show_s3_timeout);
	DefineCustomStringVariable(
		"stocks_stream.secrets_file",
		"File holding the S3 keys, the Finnhub key and secret Kafka properties.",
		"name = value lines, readable by the server's user only; a relative path is "
		"relative to the data directory.  Secrets are never settings: members of "
		"pg_read_all_settings can read every setting.",
		&ss_settings_secrets_file, "stocks_stream.secrets", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.finnhub_url", "Base URL of Finnhub's REST API.", NULL,
							   &ss_settings_finnhub_url, "https://finnhub.io/api/v1", PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("stocks_stream.finnhub_ws_url",
							   "URL of Finnhub's trade WebSocket (the token is added as ?token=).",
							   NULL, &ss_settings_finnhub_ws_url, "wss://ws.finnhub.io", PGC_SIGHUP,
							   0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"stocks_stream.database", "Database the launcher and workers connect to.", NULL,
		&ss_settings_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.max_workers", "Maximum number of archive workers across all pipelines.",
		NULL, &ss_settings_max_workers, 16, 1, 256, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.launcher_naptime",
							"How often the launcher checks the pipelines table.", NULL,
							&ss_settings_launcher_naptime_ms, 1000, 100, 60000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stocks_stream.retry_max_backoff",
							"Upper bound of the exponential backoff when S3 or Kafka fail.", NULL,
							&ss_settings_retry_max_backoff_ms, 30000, 100, 600000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("stocks_stream.min_event_year",
							"Records stamped before January 1st (UTC) of this year are refused.",
							"A quote or trade from before it is quarantined instead of creating "
							"partitions and candles of that time.",
							&ss_settings_min_event_year, 2000, 1971, 9999, PGC_SUSET, 0, NULL, NULL,
							NULL);
	DefineCustomIntVariable(
		"stocks_stream.s3_gets_in_flight",
		"How many S3 GETs load_bronze() and load_bronze_prefix() keep in flight.",
		"1 reads one object at a time.", &ss_settings_s3_gets_in_flight, 32, 1, 256, PGC_USERSET, 0,
		NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.archive_requests_in_flight",
		"How many S3 requests an archive worker keeps in flight.",
		"Objects of different partitions travel side by side, one per partition, "
		"their bytes within the pipeline's batch_max_bytes; 1 sends one at a time.",
		&ss_settings_archive_requests_in_flight, 16, 1, SS_ARCHIVE_REQUESTS_MAX, PGC_SIGHUP, 0,
		NULL, NULL, NULL);
	DefineCustomIntVariable(
		"stocks_stream.load_buffer",
		"Most bytes of objects received and not yet loaded that a load holds.",
		"Transfers pause when it is full; the object loaded next is read whatever its size.",
		&ss_settings_load_buffer_kb, 65536, 1024, MAX_KILOBYTES, PGC_USERSET, GUC_UNIT_KB, NULL,
		NULL, NULL);
	DefineCustomIntVariable("stocks_stream.progress_interval",
							"How often a long load reports its progress in a NOTICE.",
							"0 reports after every object; -1 never.",
							&ss_settings_progress_interval_ms, 10000, -1, 3600000, PGC_USERSET,
							GUC_UNIT_MS, NULL, NULL, NULL);

	define_limits();
	define_deprecated();
	define_test_clock();
	define_lake();
	MarkGUCPrefixReserved("stocks_stream");
}

/* Unix seconds of January 1st, 00:00 UTC, of stocks_stream.min_event_year. */
double
ss_settings_min_event_time(void)
{
	int year = ss_settings_min_event_year;
	int64 days =
		365 * (int64) (year - 1970) + (year - 1969) / 4 - (year - 1901) / 100 + (year - 1601) / 400;

	return (double) days * 86400.0;
}
