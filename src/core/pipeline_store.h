/*
 * pipeline_store.h
 *	  Reading pipelines, sources and stored offsets, and recording flushes,
 *	  in the extension's tables (through SPI, each call its own transaction).
 */
#ifndef STOCKS_STREAM_PIPELINE_STORE_H
#define STOCKS_STREAM_PIPELINE_STORE_H

#include "nodes/pg_list.h"

typedef struct PipelineConfig
{
	int pipeline_id;
	char *name;
	char *topic;
	char *bucket;
	char *key_prefix;
	int batch_max_messages;
	int64 batch_max_bytes;
	int batch_max_age_ms;
	bool gzip;
	bool parquet; /* format 'parquet' (else NDJSON) */
	int workers;
	int generation;
	bool running;
	bool realtime;
	char *key_topic; /* topic folder of object keys and manifest rows (archive_topic.c) */
} PipelineConfig;

typedef struct StoredOffset
{
	int32 partition;
	int64 next_offset;
} StoredOffset;

typedef struct FlushRecord
{
	const PipelineConfig *pipeline;
	const char *object_key;
	int32 partition;
	int64 first_offset;
	int64 last_offset;
	int64 message_count;
	int64 bytes;
	const char *etag;
} FlushRecord;

/* Offsets the archive skips, recorded as they are (archive_gaps.c). */
typedef struct GapRecord
{
	const PipelineConfig *pipeline;
	int32 partition;
	int64 from_offset;
	int64 to_offset; /* inclusive */
	const char *reason;
	const char *detail;
} GapRecord;

/* Which incarnation of its topic a pipeline archives (pipeline_topics). */
typedef struct TopicIncarnation
{
	bool found;		/* the pipeline has one recorded */
	bool supported; /* the database's SQL has pipeline_topics (0.4.0) */
	char *topic_id; /* NULL when unknown */
	char *key_topic;
} TopicIncarnation;

/* A pipeline or source the launcher should keep running. */
typedef struct WantedOwner
{
	bool is_source; /* an ingest source, else an archive pipeline */
	int id;
	char *name;
	int workers;
	int generation;
} WantedOwner;

typedef struct SourceConfig
{
	int source_id;
	char *name;
	char *kind;
	char **symbols;
	int nsymbols;
	int poll_interval_ms;
	char *topic;
	int generation;
	bool running;
	/* options, with their defaults applied */
	int64 seed;
	double rate;
	int quote_every;
	int64 max_messages;
	int calls_per_minute;
	bool skip_unchanged;
} SourceConfig;

/* What a real-time refresh of gold did. */
typedef enum GoldRefresh
{
	GOLD_REFRESHED,
	GOLD_BUSY,		  /* another refresh was running: try again later */
	GOLD_UNAVAILABLE, /* the database is on a version without real-time gold */
} GoldRefresh;

extern PipelineConfig *ss_pipeline_store_load_pipeline(int pipeline_id);
extern int ss_pipeline_store_load_offsets(int pipeline_id, const char *topic,
										  StoredOffset **offsets);
extern int ss_pipeline_store_record_flushes(const FlushRecord *recs, int n);
extern bool ss_pipeline_store_record_gap(const GapRecord *gap);
extern TopicIncarnation ss_pipeline_store_load_topic(const PipelineConfig *pipeline);
extern void ss_pipeline_store_adopt_topic(const PipelineConfig *pipeline, const char *topic_id,
										  const char *key_topic);
extern int64 ss_pipeline_store_load_bronze(const PipelineConfig *pipeline);
extern GoldRefresh ss_pipeline_store_refresh_recent_gold(void);
extern List *ss_pipeline_store_wanted_workers(void);
extern SourceConfig *ss_pipeline_store_load_source(int source_id);

#endif
