/*
 * bronze_line_fuzz.c
 *	  Fuzzes ss_bronze_record_check_line (src/load/bronze_record.c, over src/load/flat_json.c):
 *	  the input is an object's text, checked line by line as the bronze
 *	  loader does, each valid line rendered as a binary COPY tuple.
 */
#include "postgres.h"

#include "core/symbol.h"
#include "load/bronze_record.h"

#include "harness.h"

void
fuzz_target(const uint8_t *data, size_t size)
{
	const char *text = fuzz_cstring(data, size);
	const char *end = text + size;
	BronzeSource src = {"stocks.quotes", 3, 1000};
	StringInfoData quotes;
	StringInfoData trades;

	initStringInfo(&quotes);
	initStringInfo(&trades);
	for (const char *line = text; line <= end;)
	{
		const char *nl = memchr(line, '\n', end - line);
		size_t len = (nl ? nl : end) - line;
		BronzeEvent event;
		char reason[256];
		int quotes_len = quotes.len;
		int trades_len = trades.len;
		BronzeKind kind;

		memset(&event, 0, sizeof(event));
		reason[0] = '\0';
		kind = ss_bronze_record_check_line(line, len, &src, &quotes, &trades, &event, reason,
										   sizeof(reason));
		/* what the loader relies on */
		if (kind == BRONZE_INVALID)
		{
			if (reason[0] == '\0' || quotes.len != quotes_len || trades.len != trades_len)
				abort();
		}
		else if (!ss_symbol_valid(event.symbol, strlen(event.symbol)) || event.time_ms <= 0 ||
				 (kind == BRONZE_QUOTE ? quotes.len : trades.len) <=
					 (kind == BRONZE_QUOTE ? quotes_len : trades_len))
			abort();
		if (nl == NULL)
			break;
		line = nl + 1;
	}
}
