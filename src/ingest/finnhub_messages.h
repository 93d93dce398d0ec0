/*
 * finnhub_messages.h
 *	  Finnhub's messages, read without trusting them: the trade stream's
 *	  WebSocket messages and the REST quote body.  Pure functions of their
 *	  bytes (no worker state), so they are fuzzed as they run.
 */
#ifndef STOCKS_STREAM_FINNHUB_MESSAGES_H
#define STOCKS_STREAM_FINNHUB_MESSAGES_H

#include "lib/stringinfo.h"

typedef enum FinnhubMessageKind
{
	FINNHUB_MSG_INVALID = 0, /* not JSON, or no string "type" */
	FINNHUB_MSG_PING,
	FINNHUB_MSG_TRADES,
	FINNHUB_MSG_ERROR, /* {"type":"error","msg":...} */
	FINNHUB_MSG_OTHER  /* a type we do not act on */
} FinnhubMessageKind;

/* A trade to produce: its symbol and its JSON (both valid until the next call). */
typedef void (*FinnhubTradeFn)(const char *symbol, const char *json, size_t len, void *arg);

typedef struct FinnhubTradeCounts
{
	int64 taken;   /* handed to the callback */
	int64 skipped; /* not an object with a string "s" */
	int64 dropped; /* beyond max_trades */
} FinnhubTradeCounts;

extern FinnhubMessageKind ss_finnhub_messages_trade(const char *text, size_t len, int max_trades,
													FinnhubTradeFn fn, void *arg,
													FinnhubTradeCounts *counts, char *reason,
													size_t reason_len);

/* What a quote body holds, checked. */
typedef enum FinnhubQuoteKind
{
	FINNHUB_QUOTE_INVALID = 0,
	FINNHUB_QUOTE_ZERO, /* c = 0 and pc = 0: unknown symbol or no data */
	FINNHUB_QUOTE_OK
} FinnhubQuoteKind;

/* the largest quote body taken; none is near it */
#define FINNHUB_QUOTE_MAX_BYTES (64 * 1024)

extern FinnhubQuoteKind ss_finnhub_messages_quote_body(const char *body, size_t len,
													   const char *symbol, int64 fetched_time,
													   StringInfo out, int64 *quote_time,
													   char *reason, size_t reason_len);

#endif
