/*
 * bronze_record.c
 *	  Recognises a bronze line as a quote or a trade by its shape,
 *	  validates it, and renders it as a binary COPY tuple of the silver table.
 *
 * Quote: the fields of Finnhub's /quote (c d dp h l o pc t) plus symbol and
 * optional fetched_time.  Trade: {"s","p","t","v","c"}.  A line is refused
 * (with a reason for the quarantine) when it is empty (a Kafka tombstone),
 * longer than BRONZE_MAX_LINE, not valid UTF-8, not a JSON object, of
 * neither shape, missing a field or carrying one of the wrong type, has a
 * number that is not finite or out of bounds (a price outside
 * BRONZE_MIN_PRICE..BRONZE_MAX_PRICE, a volume outside 0..BRONZE_MAX_VOLUME,
 * any other figure beyond BRONZE_MAX_PRICE), a day high below the day low,
 * a time before stocks_stream.min_event_year or more than five minutes in
 * the future, a string holding a NUL character, or a symbol that breaks
 * the rule of symbol.c.  The bounds make every later step safe: no
 * product or sum of valid figures in gold can overflow a double.  Lines are
 * parsed by flat_json.c, in one pass and without building a tree; numbers
 * go to COPY as the very doubles strtod reads, so silver holds what
 * Finnhub sent.
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "nodes/value.h"
#include "port/pg_bswap.h"
#include "utils/memutils.h"

#include "core/clock.h"
#include "core/settings.h"
#include "load/bronze_record.h"
#include "load/flat_json.h"

#define FUTURE_SKEW_SECS 300

/*
 * The silver columns a rendered tuple fills, in the order check_quote and
 * check_trade write them (every column but loaded_at).
 */
static const char *const quote_columns[] = {
	"symbol",		"quote_time",		"price",		 "change",	   "change_pct",
	"day_high",		"day_low",			"day_open",		 "prev_close", "fetched_at",
	"source_topic", "source_partition", "source_offset",
};
static const char *const trade_columns[] = {
	"symbol",		"trade_time",		"price",		 "volume", "conditions",
	"source_topic", "source_partition", "source_offset",
};

/* The fields a quote or a trade may carry ("c" is a quote's price and a trade's conditions). */
typedef enum FieldId
{
	FID_C,
	FID_D,
	FID_DP,
	FID_H,
	FID_L,
	FID_O,
	FID_PC,
	FID_T,
	FID_SYMBOL,
	FID_FETCHED_TIME,
	FID_S,
	FID_P,
	FID_V,
	FID_COUNT
} FieldId;

static const char *const field_names[FID_COUNT] = {
	"c", "d", "dp", "h", "l", "o", "pc", "t", "symbol", "fetched_time", "s", "p", "v"};

/* One line's known fields, as the parser found them. */
typedef struct Fields
{
	FlatJsonValue value[FID_COUNT];
	bool present[FID_COUNT];
	char *reason;
	size_t reason_len;
} Fields;

/* The parser's state, kept from one line to the next. */
static FlatJson parser;
static bool parser_ready = false;

/* Which field a key names (ss_flat_json_parse's FlatJsonFieldOf). */
static int
field_of(const char *key, size_t len)
{
	for (int i = 0; i < FID_COUNT; i++)
		if (key[0] == field_names[i][0] && strlen(field_names[i]) == len &&
			memcmp(key, field_names[i], len) == 0)
			return i;
	return -1;
}

/* Present and not a JSON null. */
static bool
has_value(const Fields *f, FieldId id)
{
	return f->present[id] && f->value[id].type != FLAT_JSON_NULL;
}

static bool
refuse(Fields *f, const char *fmt, const char *field)
{
	snprintf(f->reason, f->reason_len, fmt, field);
	return false;
}

/* A finite number field; NULL allowed only when nullable. */
static bool
number_field(Fields *f, FieldId id, bool nullable, double *value, bool *isnull)
{
	const char *name = field_names[id];
	const FlatJsonValue *v = &f->value[id];

	*isnull = false;
	if (!f->present[id])
		return refuse(f, "missing field \"%s\"", name);
	if (v->type == FLAT_JSON_NULL)
	{
		*isnull = true;
		return nullable ? true : refuse(f, "field \"%s\" is null", name);
	}
	if (v->type != FLAT_JSON_NUMBER)
		return refuse(f, "field \"%s\" is not a number", name);
	*value = v->number;
	if (!isfinite(*value))
		return refuse(f, "field \"%s\" is not a finite number", name);
	/* prices (price_ok) and times (time_ok) have bounds of their own */
	if (id != FID_T && id != FID_FETCHED_TIME && id != FID_C && id != FID_P &&
		fabs(*value) > (id == FID_V ? BRONZE_MAX_VOLUME : BRONZE_MAX_FIGURE))
		return refuse(f, "field \"%s\" is out of bounds (absurdly large)", name);
	return true;
}

/* A price: a finite number within BRONZE_MIN_PRICE..BRONZE_MAX_PRICE. */
static bool
price_ok(Fields *f, const char *name, double price)
{
	if (price <= 0)
		return refuse(f, "price (\"%s\") is not greater than 0", name);
	if (price < BRONZE_MIN_PRICE || price > BRONZE_MAX_PRICE)
		return refuse(f, "price (\"%s\") is out of bounds", name);
	return true;
}

/* A JSON string, refused when it holds a NUL (C would cut it there). */
static bool
string_ok(Fields *f, const FlatJsonValue *v, const char *name, const char **out)
{
	*out = v->string;
	if (strlen(*out) != v->length)
		return refuse(f, "field \"%s\" holds a NUL character", name);
	return true;
}

static bool
symbol_field(Fields *f, FieldId id, const char **symbol)
{
	const char *name = field_names[id];
	const FlatJsonValue *v = &f->value[id];
	size_t len;

	if (!has_value(f, id))
		return refuse(f, "missing field \"%s\"", name);
	if (v->type != FLAT_JSON_STRING)
		return refuse(f, "field \"%s\" is not a string", name);
	if (!string_ok(f, v, name, symbol))
		return false;
	len = strlen(*symbol);
	if (!ss_symbol_valid(*symbol, len))
		return refuse(f, "field \"%s\" is not a symbol of 1 to 32 characters [A-Z0-9.:^_/-]", name);
	return true;
}

static bool
time_ok(Fields *f, const char *name, double secs)
{
	if (secs <= 0)
		return refuse(f, "field \"%s\" is 0 or negative (no time)", name);
	if (secs < ss_settings_min_event_time())
		return refuse(f, "field \"%s\" is before stocks_stream.min_event_year", name);
	if (secs > (double) time(NULL) + FUTURE_SKEW_SECS)
		return refuse(f, "field \"%s\" is more than five minutes in the future", name);
	return true;
}

/*
 * COPY binary format: a tuple is its field count, then each field as a
 * length word (-1 for NULL) and the value in the type's send format.  The
 * receive functions COPY calls for these (float8recv, timestamptz_recv, ...)
 * cost a fraction of the text input functions, and rendering a double or a
 * time costs nothing.
 */
static void
put_number(StringInfo row, double v, bool isnull)
{
	if (isnull)
		pq_sendint32(row, -1);
	else
	{
		pq_sendint32(row, sizeof(float8));
		pq_sendfloat8(row, v);
	}
}

/* A symbol, topic or condition code: ASCII only, so no encoding applies. */
static void
put_text(StringInfo row, const char *s)
{
	size_t len = strlen(s);

	pq_sendint32(row, (int32) len);
	appendBinaryStringInfo(row, s, (int) len);
}

/* Unix seconds to the millisecond silver keeps. */
static int64
unix_ms(double secs)
{
	return (int64) llround(secs * 1000.0);
}

static void
set_event(BronzeEvent *event, const char *symbol, double secs)
{
	strlcpy(event->symbol, symbol, sizeof(event->symbol));
	event->time_ms = unix_ms(secs);
}

/* Unix seconds, kept to the millisecond, as a timestamptz. */
static void
put_time(StringInfo row, double secs)
{
	pq_sendint32(row, sizeof(int64));
	pq_sendint64(row, ss_clock_from_unix_ms(unix_ms(secs)));
}

static void
put_source(StringInfo row, const BronzeSource *src)
{
	put_text(row, src->topic);
	pq_sendint32(row, sizeof(int32));
	pq_sendint32(row, src->partition);
	pq_sendint32(row, sizeof(int64));
	pq_sendint64(row, src->offset);
}

/* A one-dimensional text[] in array_send's format. */
static void
put_text_array(StringInfo row, const FlatJsonValue *items, size_t n)
{
	int at = row->len;
	uint32 length_word;

	pq_sendint32(row, 0); /* length word, filled in below */
	pq_sendint32(row, n > 0 ? 1 : 0);
	pq_sendint32(row, 0); /* no NULL elements */
	pq_sendint32(row, TEXTOID);
	if (n > 0)
	{
		pq_sendint32(row, (int32) n);
		pq_sendint32(row, 1);
	}
	for (size_t i = 0; i < n; i++)
		put_text(row, items[i].string);
	/*
	 * The tuple's fields have no alignment, so the length word may sit at any
	 * byte: a uint32 store there is undefined behaviour (found by the
	 * bronze_line fuzz target's UBSan); memcpy writes it at any address.
	 */
	length_word = pg_hton32((uint32) (row->len - at - 4));
	memcpy(row->data + at, &length_word, sizeof(length_word));
}

/* A quote, rendered in the order of quote_columns. */
static bool
check_quote(Fields *f, const BronzeSource *src, StringInfo row, BronzeEvent *event)
{
	const char *symbol;
	double c, d, dp, h, l, o, pc, t, fetched = 0;
	bool n, d_null, dp_null, fetched_null = true;

	if (!symbol_field(f, FID_SYMBOL, &symbol) || !number_field(f, FID_C, false, &c, &n) ||
		!number_field(f, FID_D, true, &d, &d_null) ||
		!number_field(f, FID_DP, true, &dp, &dp_null) || !number_field(f, FID_H, false, &h, &n) ||
		!number_field(f, FID_L, false, &l, &n) || !number_field(f, FID_O, false, &o, &n) ||
		!number_field(f, FID_PC, false, &pc, &n) || !number_field(f, FID_T, false, &t, &n))
		return false;
	if (f->present[FID_FETCHED_TIME] &&
		!number_field(f, FID_FETCHED_TIME, true, &fetched, &fetched_null))
		return false;
	if (!price_ok(f, "c", c))
		return false;
	if (h < l)
		return refuse(f, "day high (\"h\") is below day low (\"%s\")", "l");
	if (!time_ok(f, "t", t))
		return false;
	set_event(event, symbol, t);
	if (row == NULL)
		return true;
	pq_sendint16(row, lengthof(quote_columns));
	put_text(row, symbol);
	put_time(row, t);
	put_number(row, c, false);
	put_number(row, d, d_null);
	put_number(row, dp, dp_null);
	put_number(row, h, false);
	put_number(row, l, false);
	put_number(row, o, false);
	put_number(row, pc, false);
	if (fetched_null || fetched <= 0)
		pq_sendint32(row, -1);
	else
		put_time(row, fetched);
	put_source(row, src);
	return true;
}

/* A trade, rendered in the order of trade_columns. */
static bool
check_trade(Fields *f, const BronzeSource *src, StringInfo row, BronzeEvent *event)
{
	const char *symbol;
	double p, t, v;
	bool n;
	const FlatJsonValue *conds = NULL;
	size_t nconds = 0;

	if (!symbol_field(f, FID_S, &symbol) || !number_field(f, FID_P, false, &p, &n) ||
		!number_field(f, FID_T, false, &t, &n) || !number_field(f, FID_V, false, &v, &n))
		return false;
	if (!price_ok(f, "p", p))
		return false;
	if (v < 0)
		return refuse(f, "volume (\"%s\") is negative", "v");
	if (!time_ok(f, "t", t / 1000.0))
		return false;
	set_event(event, symbol, t / 1000.0);
	if (has_value(f, FID_C))
	{
		if (f->value[FID_C].type != FLAT_JSON_ARRAY)
			return refuse(f, "field \"%s\" is not an array of condition codes", "c");
		conds = &parser.items[f->value[FID_C].first_item];
		nconds = f->value[FID_C].nitems;
		for (size_t i = 0; i < nconds; i++)
		{
			const FlatJsonValue *e = &conds[i];
			const char *s = "";

			if (e->type == FLAT_JSON_STRING && !string_ok(f, e, "c", &s))
				return false;
			if (e->type != FLAT_JSON_STRING || strlen(s) > 16 ||
				strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") !=
					strlen(s))
				return refuse(
					f, "field \"%s\" holds a condition code that is not 1-16 letters or digits",
					"c");
		}
	}
	if (row == NULL)
		return true;
	pq_sendint16(row, lengthof(trade_columns));
	put_text(row, symbol);
	put_time(row, t / 1000.0);
	put_number(row, p, false);
	put_number(row, v, false);
	put_text_array(row, conds, nconds);
	put_source(row, src);
	return true;
}

BronzeKind
ss_bronze_record_check_line(const char *line, size_t len, const BronzeSource *src,
							StringInfo quotes, StringInfo trades, BronzeEvent *event, char *reason,
							size_t reason_len)
{
	Fields f;
	BronzeKind kind = BRONZE_INVALID;
	int quotes_len = quotes ? quotes->len : 0;
	int trades_len = trades ? trades->len : 0;

	memset(&f, 0, sizeof(f));
	f.reason = reason;
	f.reason_len = reason_len;
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	if (len == 0)
	{
		snprintf(reason, reason_len, "empty message (tombstone)");
		return BRONZE_INVALID;
	}
	if (len > BRONZE_MAX_LINE)
	{
		snprintf(reason, reason_len, "line of %zu bytes is longer than the limit of %d", len,
				 BRONZE_MAX_LINE);
		return BRONZE_INVALID;
	}
	if (!pg_verify_mbstr(PG_UTF8, line, (int) len, true))
	{
		snprintf(reason, reason_len, "line is not valid UTF-8");
		return BRONZE_INVALID;
	}
	if (!parser_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		ss_flat_json_init(&parser);
		parser_ready = true;
		MemoryContextSwitchTo(old);
	}
	switch (ss_flat_json_parse(&parser, line, len, field_of, f.value, f.present))
	{
		case FLAT_JSON_INVALID:
			snprintf(reason, reason_len, "line is not valid JSON");
			break;
		case FLAT_JSON_NOT_OBJECT:
			snprintf(reason, reason_len, "line is JSON but not an object");
			break;
		case FLAT_JSON_OK:
			if (f.present[FID_SYMBOL] || f.present[FID_PC])
				kind = check_quote(&f, src, quotes, event) ? BRONZE_QUOTE : BRONZE_INVALID;
			else if (f.present[FID_S] && f.present[FID_P])
				kind = check_trade(&f, src, trades, event) ? BRONZE_TRADE : BRONZE_INVALID;
			else
				snprintf(reason, reason_len,
						 "neither a quote (c, pc, t, symbol) nor a trade (s, p, t, v)");
			break;
	}
	/* drop a half-written tuple */
	if (kind == BRONZE_INVALID && quotes != NULL)
		quotes->len = quotes_len;
	if (kind == BRONZE_INVALID && trades != NULL)
		trades->len = trades_len;
	return kind;
}

/*
 * The silver columns of a kind's tuples, in their order, as the column
 * list of BeginCopyFrom.
 */
List *
ss_bronze_record_copy_columns(BronzeKind kind)
{
	const char *const *names = kind == BRONZE_QUOTE ? quote_columns : trade_columns;
	int n = kind == BRONZE_QUOTE ? lengthof(quote_columns) : lengthof(trade_columns);
	List *columns = NIL;

	Assert(kind == BRONZE_QUOTE || kind == BRONZE_TRADE);
	for (int i = 0; i < n; i++)
		columns = lappend(columns, makeString(pstrdup(names[i])));
	return columns;
}
