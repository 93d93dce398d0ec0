/*
 * finnhub_quote_fuzz.c
 *	  Fuzzes ss_finnhub_messages_quote_body (src/ingest/finnhub_messages.c): the input is the
 *	  body of a GET /quote answer.  A good quote's rendering (what goes to
 *	  Kafka) is then read back by the bronze line checker, as the loader
 *	  will read it: it must be one valid JSON line, and no quote Finnhub's
 *	  reader takes may make that checker fail for its syntax or encoding.
 */
#include "postgres.h"

#include "ingest/finnhub_messages.h"
#include "load/bronze_record.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	StringInfoData out;
	int64 quote_time = -1;
	char reason[300];

	initStringInfo(&out);
	switch (ss_finnhub_messages_quote_body((const char *) data, size, "AAPL", 1700000001, &out,
										   &quote_time, reason, sizeof(reason)))
	{
		case FINNHUB_QUOTE_OK:
		{
			BronzeSource src = {"stocks.quotes", 0, 0};
			BronzeEvent event;
			char why[256];

			if (quote_time < 0 || out.len == 0 || memchr(out.data, '\n', out.len) != NULL)
				abort();
			why[0] = '\0';
			if (ss_bronze_record_check_line(out.data, out.len, &src, NULL, NULL, &event, why,
											sizeof(why)) == BRONZE_INVALID &&
				(strstr(why, "not valid JSON") != NULL || strstr(why, "UTF-8") != NULL ||
				 strstr(why, "not an object") != NULL))
			{
				fprintf(stderr, "a quote taken from Finnhub fails the bronze check: %s\n%s\n", why,
						out.data);
				abort();
			}
			break;
		}
		case FINNHUB_QUOTE_ZERO:
			if (quote_time < 0)
				abort();
			break;
		case FINNHUB_QUOTE_INVALID:
			if (reason[0] == '\0')
				abort();
			break;
	}
}
