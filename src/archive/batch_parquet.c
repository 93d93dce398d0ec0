/*
 * batch_parquet.c
 *	  The batch of a pipeline whose format is 'parquet': each message becomes
 *	  one row of the batch's Parquet object (src/lake/parquet_object.c), with
 *	  its topic, partition, offset, Kafka timestamp, key, headers and raw
 *	  value, byte for byte (unlike an NDJSON line, no CR or LF is replaced:
 *	  the offset column, not a line number, places a row).
 *
 * Headers become a JSON object, {"name": "value", ...}, in Kafka's order
 * (a repeated name is repeated; a header without a value is null).  The
 * rows are held by the library until the flush encodes them as one object
 * of one row group: what a worker holds stays bounded by the batch's
 * bytes (max bytes), counted as the value, key and headers of each message
 * and what the library keeps beside them (ROW_FIXED_BYTES).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "archive/batch_parquet.h"
#include "lake/parquet_object.h"

/*
 * What a row costs the library beside its value and key (lib.rs's
 * Buffered): its offset and timestamp (8 bytes each), three definition
 * levels (2 each), and where its value and key end (4 each); headers add
 * their bytes and an end of their own.  Counted, a batch's max bytes is
 * what its rows hold in memory.
 */
#define ROW_FIXED_BYTES	  30
#define HEADERS_END_BYTES 4

/*
 * Kafka's headers of msg as a JSON object into buf (initialised here, to
 * pfree); false, and buf untouched, when it has none.
 */
static bool
headers_json(const rd_kafka_message_t *msg, StringInfo buf)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *name;
	const void *value;
	size_t size;

	if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL ||
		rd_kafka_header_cnt(hdrs) == 0)
		return false;
	initStringInfo(buf);
	appendStringInfoChar(buf, '{');
	for (size_t i = 0;
		 rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		escape_json(buf, name);
		appendStringInfoChar(buf, ':');
		if (value == NULL)
			appendStringInfoString(buf, "null");
		else
		{
			char *text = pnstrdup(value, size);

			escape_json(buf, text);
			pfree(text);
		}
	}
	appendStringInfoChar(buf, '}');
	return true;
}

/* What a message adds to a batch's bytes (before its headers are read). */
size_t
ss_batch_parquet_size(const rd_kafka_message_t *msg)
{
	return msg->len + msg->key_len + ROW_FIXED_BYTES;
}

void
ss_batch_parquet_append(PartitionBatch *batch, const char *topic, const rd_kafka_message_t *msg)
{
	ParquetMessage m = {0};
	StringInfoData headers;

	if (batch->parquet == NULL)
		batch->parquet = ss_parquet_object_writer(topic, batch->partition);
	m.offset = msg->offset;
	m.timestamp_ms = rd_kafka_message_timestamp(msg, NULL);
	m.key = msg->key;
	m.key_len = msg->key_len;
	if (headers_json(msg, &headers))
	{
		m.headers = headers.data;
		m.headers_len = headers.len;
	}
	m.value = msg->payload != NULL ? msg->payload : "";
	m.value_len = msg->len;
	ss_parquet_object_add(batch->parquet, &m);
	ss_batch_note_message(batch, msg->offset, m.timestamp_ms,
						  ss_batch_parquet_size(msg) +
							  (m.headers != NULL ? m.headers_len + HEADERS_END_BYTES : 0));
	if (m.headers != NULL)
		pfree(headers.data);
}

/* The batch's object, palloc'd in the current memory context; the batch is emptied. */
char *
ss_batch_parquet_encode(PartitionBatch *batch, size_t *out_len)
{
	char *out = ss_parquet_object_finish(batch->parquet, out_len);

	ss_batch_clear(batch);
	return out;
}
