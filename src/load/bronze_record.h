/*
 * bronze_record.h
 *	  Recognising, validating and rendering one bronze NDJSON line.
 */
#ifndef STOCKS_STREAM_BRONZE_RECORD_H
#define STOCKS_STREAM_BRONZE_RECORD_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "core/symbol.h"

#define BRONZE_MAX_LINE 65536

/*
 * Bounds of a valid figure.  With them no product or sum of valid values
 * in gold (VWAP's sum of price * volume over billions of trades, a change
 * in percent of the smallest price) comes near a double's range.
 */
#define BRONZE_MIN_PRICE  1e-12
#define BRONZE_MAX_PRICE  1e9
#define BRONZE_MAX_FIGURE 1e9 /* changes, day high/low/open, previous close */
#define BRONZE_MAX_VOLUME 1e15

typedef enum BronzeKind
{
	BRONZE_INVALID = 0,
	BRONZE_QUOTE,
	BRONZE_TRADE
} BronzeKind;

typedef struct BronzeSource
{
	const char *topic;
	int32 partition;
	int64 offset;
} BronzeSource;

/* What a valid line is about: for daily partitions and the gold watermark. */
typedef struct BronzeEvent
{
	char symbol[SYMBOL_MAX_LEN + 1];
	int64 time_ms; /* event time in unix milliseconds, exactly as stored */
} BronzeEvent;

/*
 * Checks one line.  A valid quote is appended to `quotes`, a valid trade to
 * `trades`, as a binary COPY tuple of its silver table (both may be NULL
 * to only check), and its symbol and event time stored in *event;
 * otherwise `reason` gets a sentence a person can act on.
 */
extern BronzeKind ss_bronze_record_check_line(const char *line, size_t len, const BronzeSource *src,
											  StringInfo quotes, StringInfo trades,
											  BronzeEvent *event, char *reason, size_t reason_len);
extern List *ss_bronze_record_copy_columns(BronzeKind kind);

#endif
