/*
 * finnhub_ws_fuzz.c
 *	  Fuzzes ss_finnhub_messages_trade (src/ingest/finnhub_messages.c): the input is
 *	  one message of Finnhub's trade WebSocket, as the worker hands it over
 *	  once complete.  At most 20 trades are taken, so the cap is reached
 *	  too; every trade handed over is checked to be a symbol and JSON text
 *	  of the length given, and the counts to add up.  Each trade's JSON (what
 *	  goes to Kafka) is read back by the bronze line checker, as the loader
 *	  will read it: no trade taken may fail there for its syntax or encoding.
 */
#include "postgres.h"

#include "ingest/finnhub_messages.h"
#include "load/bronze_record.h"

#include "harness.h"

#define MAX_TRADES 20

static void
take_trade(const char *symbol, const char *json, size_t len, void *arg)
{
	int *n = arg;
	BronzeSource src = {"stocks.trades", 0, 0};
	BronzeEvent event;
	char why[256];

	if (symbol == NULL || json == NULL || strlen(json) != len || len < 2 || json[0] != '{' ||
		json[len - 1] != '}' || memchr(json, '\n', len) != NULL)
		abort();
	why[0] = '\0';
	if (ss_bronze_record_check_line(json, len, &src, NULL, NULL, &event, why, sizeof(why)) ==
			BRONZE_INVALID &&
		(strstr(why, "not valid JSON") != NULL || strstr(why, "UTF-8") != NULL ||
		 strstr(why, "not an object") != NULL))
	{
		fprintf(stderr, "a trade taken from Finnhub fails the bronze check: %s\n%s\n", why, json);
		abort();
	}
	(*n)++;
}

void
fuzz_target(const uint8_t *data, size_t size)
{
	FinnhubTradeCounts counts = {0};
	char reason[300];
	int n = 0;

	switch (ss_finnhub_messages_trade((const char *) data, size, MAX_TRADES, take_trade, &n,
									  &counts, reason, sizeof(reason)))
	{
		case FINNHUB_MSG_INVALID:
		case FINNHUB_MSG_ERROR:
			if (reason[0] == '\0' || n != 0)
				abort();
			break;
		case FINNHUB_MSG_TRADES:
			if (counts.taken != n || n > MAX_TRADES || counts.skipped < 0 || counts.dropped < 0)
				abort();
			break;
		case FINNHUB_MSG_PING:
		case FINNHUB_MSG_OTHER:
			if (n != 0)
				abort();
			break;
	}
}
