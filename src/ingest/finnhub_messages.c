/*
 * finnhub_messages.c
 *	  Reading Finnhub's messages: every byte is hostile until checked.
 *
 * A WebSocket message is {"type":"trade","data":[{"s":..,"p":..,...}]},
 * {"type":"ping"} or {"type":"error","msg":..}; anything else, a "type"
 * that is not a string included, is reported, never dereferenced.  A quote
 * body is an object of numbers c, d, dp, h, l, o, pc, t; t must be a whole
 * number of seconds a timestamp can hold.  Both must be valid UTF-8 (json-c
 * checks it), so what reaches Kafka is valid JSON text.  json-c objects are
 * malloc'd by json-c and always put before returning; what the caller
 * keeps is palloc'd in its context.
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>
#include <json-c/json.h>

#include "mb/pg_wchar.h"

#include "ingest/finnhub_messages.h"

/* A quote's t: unix seconds before 10000-01-01, which every later step can hold. */
#define QUOTE_MAX_TIME 253402300799.0

/*
 * Is s a number as JSON writes it (RFC 8259), or NaN or [-]Infinity (which
 * the loader reads as numbers and refuses for their value)?
 */
static bool
json_number_text(const char *s)
{
	if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0)
		return true;
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return false;
	if (*s == '.')
	{
		if (!(*++s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E')
	{
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/*
 * json-c's tokener takes numbers JSON does not allow ("1.", "1.e5",
 * "-01.5"), even with JSON_TOKENER_STRICT, and writes a parsed double back
 * as its original text: a trade or quote holding one would reach Kafka as
 * text that is not JSON, and the loader (flat_json.c, strict) would
 * quarantine it.  Such a number is written from its value instead (the
 * double json-c read, as strtod reads it).  Found by
 * fuzz/finnhub_quote_fuzz.c.  json-c bounds the nesting (32), so the
 * recursion is bounded too.
 */
static void
rewrite_non_json_numbers(json_object *obj)
{
	switch (json_object_get_type(obj))
	{
		case json_type_double:
			if (!json_number_text(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN)))
				json_object_set_double(obj, json_object_get_double(obj));
			break;
		case json_type_array:
			for (size_t i = 0; i < json_object_array_length(obj); i++)
				rewrite_non_json_numbers(json_object_array_get_idx(obj, i));
			break;
		case json_type_object:
		{
			json_object_object_foreach(obj, key, value)
			{
				(void) key;
				rewrite_non_json_numbers(value);
			}
			break;
		}
		default:
			break;
	}
}

/* Parse `len` bytes of JSON text, strictly, UTF-8 checked; NULL when invalid. */
static json_object *
parse_json(const char *text, size_t len)
{
	json_tokener *tok;
	json_object *obj;

	/*
	 * json-c's UTF-8 check (JSON_TOKENER_VALIDATE_UTF8, json-c 0.16) only
	 * checks the shape of sequences: it takes overlong forms (C0 80, an
	 * encoded NUL), surrogates (ED A0 80) and code points beyond U+10FFFF
	 * (F4 90 80 80, lead bytes F5-F7), which PostgreSQL, and so the
	 * loader, refuses.  PostgreSQL's own check decides.  Found by the
	 * finnhub_quote and finnhub_ws fuzz targets.
	 */
	if (len > INT_MAX || pg_encoding_verifymbstr(PG_UTF8, text, (int) len) != (int) len)
		return NULL;
	if ((tok = json_tokener_new()) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int) Min(len, (size_t) INT_MAX));
	/* all of it must be one value, whitespace around it aside */
	if (obj != NULL && len <= INT_MAX && json_tokener_get_error(tok) == json_tokener_success)
	{
		size_t end = json_tokener_get_parse_end(tok);

		while (end < len && strchr(" \t\r\n", text[end]) != NULL && text[end] != '\0')
			end++;
		if (end == len)
		{
			json_tokener_free(tok);
			rewrite_non_json_numbers(obj);
			return obj;
		}
	}
	if (obj != NULL)
		json_object_put(obj);
	json_tokener_free(tok);
	return NULL;
}

/* The string value of `field` in an object, or NULL when absent or not a string. */
static const char *
string_field(json_object *obj, const char *field)
{
	json_object *v;

	if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, field, &v) ||
		!json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void
take_trades(json_object *data, int max_trades, FinnhubTradeFn fn, void *arg,
			FinnhubTradeCounts *counts)
{
	size_t n = json_object_array_length(data);

	for (size_t i = 0; i < n; i++)
	{
		json_object *trade = json_object_array_get_idx(data, i);
		const char *symbol = string_field(trade, "s");
		const char *json;

		if (symbol == NULL)
			counts->skipped++;
		else if (counts->taken >= max_trades)
			counts->dropped++;
		else
		{
			json = json_object_to_json_string_ext(trade, JSON_C_TO_STRING_PLAIN |
															 JSON_C_TO_STRING_NOSLASHESCAPE);
			fn(symbol, json, strlen(json), arg);
			counts->taken++;
		}
	}
}

/*
 * Read one trade-stream message.  Its trades (objects with a string "s")
 * go to fn, at most max_trades of them in all of `counts`; those beyond
 * are counted as dropped, those without a symbol as skipped.  An invalid
 * or error message gets a reason.
 */
FinnhubMessageKind
ss_finnhub_messages_trade(const char *text, size_t len, int max_trades, FinnhubTradeFn fn,
						  void *arg, FinnhubTradeCounts *counts, char *reason, size_t reason_len)
{
	json_object *msg = parse_json(text, len);
	const char *type = msg ? string_field(msg, "type") : NULL;
	FinnhubMessageKind kind = FINNHUB_MSG_OTHER;
	json_object *data;

	reason[0] = '\0';
	if (type == NULL)
	{
		snprintf(reason, reason_len, "a message that is not JSON with a string \"type\"");
		kind = FINNHUB_MSG_INVALID;
	}
	else if (strcmp(type, "ping") == 0)
		kind = FINNHUB_MSG_PING;
	else if (strcmp(type, "trade") == 0)
	{
		if (!json_object_object_get_ex(msg, "data", &data) ||
			!json_object_is_type(data, json_type_array))
		{
			snprintf(reason, reason_len, "a trade message whose \"data\" is not an array");
			kind = FINNHUB_MSG_INVALID;
		}
		else
		{
			take_trades(data, max_trades, fn, arg, counts);
			kind = FINNHUB_MSG_TRADES;
		}
	}
	else if (strcmp(type, "error") == 0)
	{
		const char *why = string_field(msg, "msg");

		snprintf(reason, reason_len, "Finnhub says: %.200s", why ? why : "(no msg)");
		kind = FINNHUB_MSG_ERROR;
	}
	if (msg != NULL)
		json_object_put(msg);
	return kind;
}

/* A finite number field; false when absent or not a number. */
static bool
number_field(json_object *obj, const char *field, double *value)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, field, &v) ||
		!(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	*value = json_object_get_double(v);
	return isfinite(*value);
}

static FinnhubQuoteKind
check_quote(json_object *obj, int64 *quote_time, char *reason, size_t reason_len)
{
	double c, pc, t;

	if (!json_object_is_type(obj, json_type_object))
		snprintf(reason, reason_len, "not a JSON object");
	else if (!number_field(obj, "c", &c) || !number_field(obj, "pc", &pc) ||
			 !number_field(obj, "t", &t))
		snprintf(reason, reason_len, "\"c\", \"pc\" or \"t\" is missing or not a finite number");
	else if (t < 0 || t > QUOTE_MAX_TIME || t != floor(t))
		snprintf(reason, reason_len, "\"t\" is not a time in whole unix seconds");
	else
	{
		*quote_time = (int64) t;
		return (c == 0 && pc == 0) ? FINNHUB_QUOTE_ZERO : FINNHUB_QUOTE_OK;
	}
	return FINNHUB_QUOTE_INVALID;
}

/*
 * Check a /quote body.  A good quote is rendered into `out` (reset first)
 * as Finnhub's JSON plus "symbol" and "fetched_time", the shape the Python
 * pipeline wrote; its t goes to *quote_time.  An invalid body gets a reason.
 */
FinnhubQuoteKind
ss_finnhub_messages_quote_body(const char *body, size_t len, const char *symbol, int64 fetched_time,
							   StringInfo out, int64 *quote_time, char *reason, size_t reason_len)
{
	json_object *obj;
	FinnhubQuoteKind kind;

	reason[0] = '\0';
	if (len > FINNHUB_QUOTE_MAX_BYTES)
	{
		snprintf(reason, reason_len, "a body of %zu bytes, over the limit of %d", len,
				 FINNHUB_QUOTE_MAX_BYTES);
		return FINNHUB_QUOTE_INVALID;
	}
	if ((obj = parse_json(body, len)) == NULL)
	{
		snprintf(reason, reason_len, "not JSON (or not valid UTF-8)");
		return FINNHUB_QUOTE_INVALID;
	}
	kind = check_quote(obj, quote_time, reason, reason_len);
	if (kind == FINNHUB_QUOTE_OK)
	{
		json_object_object_add(obj, "symbol", json_object_new_string(symbol));
		json_object_object_add(obj, "fetched_time", json_object_new_int64(fetched_time));
		resetStringInfo(out);
		appendStringInfoString(out,
							   json_object_to_json_string_ext(
								   obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(obj);
	return kind;
}
