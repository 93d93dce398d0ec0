/*
 * symbol.c
 *	  The one rule for a market symbol, and its SQL face
 *	  stocks_stream.symbol_is_valid(text).
 *
 * Symbols are written as Finnhub writes them (AAPL, BRK.B,
 * BINANCE:BTCUSDT, OANDA:EUR_USD): upper-case letters and digits with
 * . : ^ _ / -, starting with a letter or digit, at most 32 characters.
 * Only ASCII, so a symbol needs no encoding anywhere (COPY, object keys,
 * Kafka keys).
 */
#include "postgres.h"

#include "fmgr.h"

#include "core/pg_compat.h"
#include "core/symbol.h"

/* Is s[0..len-1] (not necessarily NUL-terminated) a symbol? */
bool
ss_symbol_valid(const char *s, size_t len)
{
	if (len < 1 || len > SYMBOL_MAX_LEN || s[0] == '\0' || strchr(SYMBOL_FIRST_CHARS, s[0]) == NULL)
		return false;
	for (size_t i = 1; i < len; i++)
		if (s[i] == '\0' || strchr(SYMBOL_CHARS, s[i]) == NULL)
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(ss_symbol_is_valid);

/* symbol_is_valid(symbol text) -> boolean */
Datum
ss_symbol_is_valid(PG_FUNCTION_ARGS)
{
	text *symbol = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(ss_symbol_valid(VARDATA_ANY(symbol), VARSIZE_ANY_EXHDR(symbol)));
}
