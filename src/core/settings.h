/*
 * settings.h
 *	  The extension's configuration parameters (GUCs), defined in one place.
 */
#ifndef STOCKS_STREAM_SETTINGS_H
#define STOCKS_STREAM_SETTINGS_H

/* Kafka */
extern char *ss_settings_kafka_brokers;
extern char *ss_settings_kafka_properties;

/* S3 / MinIO */
extern char *ss_settings_s3_endpoint;
extern char *ss_settings_s3_region;
extern bool ss_settings_s3_path_style;
extern char *ss_settings_s3_ca_file;

/* credentials: the file that holds them (secrets.c) */
extern char *ss_settings_secrets_file;

/* Finnhub */
extern char *ss_settings_finnhub_url;
extern char *ss_settings_finnhub_ws_url;

/* workers */
extern char *ss_settings_database;
extern int ss_settings_max_workers;
extern int ss_settings_launcher_naptime_ms;
extern int ss_settings_retry_max_backoff_ms;

/* loading */
extern int ss_settings_min_event_year;
extern int ss_settings_s3_gets_in_flight;
#define SS_ARCHIVE_REQUESTS_MAX 256 /* stocks_stream.archive_requests_in_flight's maximum */
extern int ss_settings_archive_requests_in_flight;
extern int ss_settings_load_buffer_kb;
extern int ss_settings_progress_interval_ms;

/* limits on what comes from outside (docs/configuration.md, "Limits") */
extern int ss_settings_ws_max_message_kb;
extern int ss_settings_ws_silence_timeout_ms;
extern int ss_settings_max_object_kb;
extern int ss_settings_s3_max_list_pages;
extern int ss_settings_quarantine_raw_max;
extern int ss_settings_event_time_window_min;
extern int ss_settings_load_retry_backoff_ms;
extern int ss_settings_load_max_attempts;

/* for tests only: the archive workers' clock (core/clock.c) */
extern double ss_settings_test_clock;

/* tiering silver days to the lake (docs/lake.md); the crash point is for tests only */
extern int ss_settings_lake_row_group_rows;
extern int ss_settings_lake_object_kb;
extern int ss_settings_lake_sort_kb;
extern char *ss_settings_test_crash_point;

/* stocks_stream.max_object_size in bytes: the most an object may inflate to */
static inline size_t
ss_settings_max_object_bytes(void)
{
	return (size_t) ss_settings_max_object_kb * 1024;
}

extern void ss_settings_define(void);
extern double ss_settings_min_event_time(void);
extern int ss_settings_s3_timeout_ms(void);

#endif
