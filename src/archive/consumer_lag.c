/*
 * consumer_lag.c
 *	  stocks_stream.consumer_lag_internal(): per pipeline partition, the
 *	  offset stored in Postgres, Kafka's high watermark and the lag.
 *
 * Runs in an ordinary backend with a short-lived librdkafka producer handle
 * (metadata and watermark queries only).  The calls block this backend
 * while librdkafka's threads talk to the brokers; none of them touches
 * Postgres.  When Kafka cannot be reached the Kafka columns are NULL and a
 * WARNING says why, so health views keep working during an outage.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "kafka/kafka.h"

#define KAFKA_TIMEOUT_MS 5000

typedef struct LagSource
{
	char *pipeline;
	int pipeline_id;
	char *topic;
} LagSource;

/*
 * The pipelines, in the caller's memory context: SPI_finish frees what
 * SPI_getvalue returned and every list made after SPI_connect, so each
 * value is copied out as it is read.  (Not inlined into ss_consumer_lag,
 * whose PG_TRY would make its locals longjmp-clobbered.)
 */
pg_noinline static List *
read_pipelines(void)
{
	MemoryContext outer = CurrentMemoryContext;
	List *result = NIL;

	SPI_connect();
	if (SPI_execute("SELECT pipeline_id, name, topic FROM stocks_stream.pipelines ORDER BY name",
					true, 0) != SPI_OK_SELECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not read stocks_stream.pipelines")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple tuple = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(outer);
		LagSource *src = palloc(sizeof(LagSource));
		bool isnull;

		src->pipeline_id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
		src->pipeline = TextDatumGetCString(SPI_getbinval(tuple, desc, 2, &isnull));
		src->topic = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
		result = lappend(result, src);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return result;
}

/* Partitions of a topic, or -1 when Kafka did not answer. */
static int
topic_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int n = -1;
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);

	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	else
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("stocks_stream: could not read Kafka metadata of topic \"%s\": %s", topic,
						rd_kafka_err2str(err ? err
											 : (md && md->topic_cnt == 1
													? md->topics[0].err
													: RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)))));
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

static bool
stored_offset(int pipeline_id, const char *topic, int partition, int64 *next)
{
	Oid types[3] = {INT4OID, TEXTOID, INT4OID};
	Datum args[3] = {Int32GetDatum(pipeline_id), CStringGetTextDatum(topic),
					 Int32GetDatum(partition)};
	bool found = false;
	bool isnull;

	SPI_connect();
	if (SPI_execute_with_args("SELECT next_offset FROM stocks_stream.offsets "
							  "WHERE pipeline_id = $1 AND topic = $2 AND partition = $3",
							  3, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		*next =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		found = true;
	}
	SPI_finish();
	return found;
}

PG_FUNCTION_INFO_V1(ss_consumer_lag);

Datum
ss_consumer_lag(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List *pipelines;
	ListCell *lc;
	rd_kafka_t *rk;

	InitMaterializedSRF(fcinfo, 0);
	pipelines = read_pipelines();
	if (pipelines == NIL)
		return (Datum) 0;

	rk = ss_kafka_new(RD_KAFKA_PRODUCER, ss_kafka_conf_new(NULL, NULL));
	PG_TRY();
	{
		foreach (lc, pipelines)
		{
			LagSource *src = lfirst(lc);
			int nparts = topic_partitions(rk, src->topic);

			for (int p = 0; p < nparts; p++)
			{
				Datum values[7];
				bool nulls[7] = {0};
				int64 low = 0, high = 0, next = 0;
				bool have_next = stored_offset(src->pipeline_id, src->topic, p, &next);
				rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, src->topic, p, &low,
																		   &high, KAFKA_TIMEOUT_MS);

				values[0] = CStringGetTextDatum(src->pipeline);
				values[1] = CStringGetTextDatum(src->topic);
				values[2] = Int32GetDatum(p);
				values[3] = Int64GetDatum(next);
				nulls[3] = !have_next;
				values[4] = Int64GetDatum(low);
				values[5] = Int64GetDatum(high);
				/* nothing stored yet: everything still in the log is lag */
				values[6] = Int64GetDatum(high - (have_next ? Max(next, low) : low));
				if (err)
				{
					nulls[4] = nulls[5] = nulls[6] = true;
					ereport(WARNING,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("stocks_stream: could not read Kafka watermarks of %s[%d]: %s",
									src->topic, p, rd_kafka_err2str(err))));
				}
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		}
	}
	PG_FINALLY();
	{
		rd_kafka_destroy(rk);
	}
	PG_END_TRY();
	return (Datum) 0;
}
