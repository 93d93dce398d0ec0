/*
 * flat_json.c
 *	  A strict JSON parser for bronze lines: one object whose wanted keys
 *	  are read, and whose other content is only checked.
 *
 * A general JSON library builds a tree: an allocation per value and a hash
 * table per object, then the caller looks each key up.  Bronze lines are
 * flat objects of a dozen keys, read once, so here the text is read in one
 * pass: a key the caller wants gets its value (a number as a double, a
 * string decoded, an array's elements), everything else is checked against
 * the grammar of RFC 8259 (plus NaN and Infinity, see parse_non_finite)
 * and skipped.  Numbers are read exactly as strtod
 * reads them: short decimals, which are nearly all of them, by Clinger's
 * exact fast path (a mantissa below 2^53 times a power of ten up to 10^22,
 * one correctly rounded operation), the others by strtod itself.
 */
#include "postgres.h"

#include <math.h>

#include "utils/float.h"

#include "load/flat_json.h"

typedef struct Cursor
{
	const char *s;
	const char *end;
	FlatJson *p;
} Cursor;

static bool parse_value(Cursor *c, int depth, FlatJsonValue *out, bool collect);

void
ss_flat_json_init(FlatJson *p)
{
	initStringInfo(&p->strings);
	p->maxitems = 16;
	p->nitems = 0;
	p->items = palloc(sizeof(FlatJsonValue) * p->maxitems);
}

static inline void
skip_ws(Cursor *c)
{
	while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
		c->s++;
}

static int
hex_value(char h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	if (h >= 'a' && h <= 'f')
		return h - 'a' + 10;
	if (h >= 'A' && h <= 'F')
		return h - 'A' + 10;
	return -1;
}

/* Four hex digits after "\u". */
static bool
read_hex4(Cursor *c, int *code)
{
	int v = 0;

	if (c->end - c->s < 4)
		return false;
	for (int i = 0; i < 4; i++)
	{
		int h = hex_value(c->s[i]);

		if (h < 0)
			return false;
		v = v * 16 + h;
	}
	c->s += 4;
	*code = v;
	return true;
}

static void
put_utf8(StringInfo buf, int code)
{
	if (code < 0x80)
		appendStringInfoCharMacro(buf, (char) code);
	else if (code < 0x800)
	{
		appendStringInfoChar(buf, (char) (0xC0 | (code >> 6)));
		appendStringInfoChar(buf, (char) (0x80 | (code & 0x3F)));
	}
	else if (code < 0x10000)
	{
		appendStringInfoChar(buf, (char) (0xE0 | (code >> 12)));
		appendStringInfoChar(buf, (char) (0x80 | ((code >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (code & 0x3F)));
	}
	else
	{
		appendStringInfoChar(buf, (char) (0xF0 | (code >> 18)));
		appendStringInfoChar(buf, (char) (0x80 | ((code >> 12) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | ((code >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (code & 0x3F)));
	}
}

/*
 * The code point of a "\u" escape (the backslash and u already read),
 * joining a surrogate pair; a lone surrogate reads as U+FFFD.
 */
static bool
read_unicode_escape(Cursor *c, int *code)
{
	int lo;

	if (!read_hex4(c, code))
		return false;
	if (*code < 0xD800 || *code > 0xDBFF)
	{
		if (*code >= 0xDC00 && *code <= 0xDFFF)
			*code = 0xFFFD;
		return true;
	}
	if (c->end - c->s >= 6 && c->s[0] == '\\' && c->s[1] == 'u')
	{
		Cursor ahead = *c;

		ahead.s += 2;
		if (read_hex4(&ahead, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
		{
			*c = ahead;
			*code = 0x10000 + ((*code - 0xD800) << 10) + (lo - 0xDC00);
			return true;
		}
	}
	*code = 0xFFFD;
	return true;
}

/* One escape (the backslash already read), decoded into buf when given. */
static bool
read_escape(Cursor *c, StringInfo buf)
{
	char e;
	int code;

	if (c->s >= c->end)
		return false;
	e = *c->s++;
	switch (e)
	{
		case '"':
		case '\\':
		case '/':
			code = e;
			break;
		case 'b':
			code = '\b';
			break;
		case 'f':
			code = '\f';
			break;
		case 'n':
			code = '\n';
			break;
		case 'r':
			code = '\r';
			break;
		case 't':
			code = '\t';
			break;
		case 'u':
			if (!read_unicode_escape(c, &code))
				return false;
			break;
		default:
			return false;
	}
	if (buf != NULL)
		put_utf8(buf, code);
	return true;
}

/*
 * A string (at its opening quote).  With `out`, decoded into the parser's
 * string buffer, which the parse sized so that it never moves.
 */
static bool
parse_string(Cursor *c, FlatJsonValue *out)
{
	StringInfo buf = out != NULL ? &c->p->strings : NULL;
	int start = buf != NULL ? buf->len : 0;

	c->s++;
	for (;;)
	{
		const char *run = c->s;

		while (c->s < c->end && *c->s != '"' && *c->s != '\\' && (unsigned char) *c->s >= 0x20)
			c->s++;
		if (buf != NULL)
			appendBinaryStringInfo(buf, run, (int) (c->s - run));
		if (c->s >= c->end || (unsigned char) *c->s < 0x20)
			return false;
		if (*c->s++ == '"')
			break;
		if (!read_escape(c, buf))
			return false;
	}
	if (out != NULL)
	{
		out->type = FLAT_JSON_STRING;
		out->string = buf->data + start;
		out->length = buf->len - start;
		appendStringInfoCharMacro(buf, '\0');
	}
	return true;
}

static inline bool
is_digit(const Cursor *c)
{
	return c->s < c->end && *c->s >= '0' && *c->s <= '9';
}

/* A run of digits into a decimal mantissa of at most 19 digits. */
static void
read_digits(Cursor *c, uint64 *mantissa, int *digits, int *exp10, bool fraction)
{
	while (is_digit(c))
	{
		int d = *c->s++ - '0';

		if (*mantissa == 0 && d == 0)
			*exp10 -= fraction ? 1 : 0;
		else if (*digits < 19)
		{
			*mantissa = *mantissa * 10 + d;
			(*digits)++;
			*exp10 -= fraction ? 1 : 0;
		}
		else
		{
			*digits = 20; /* more than the mantissa holds: not exact */
			*exp10 += fraction ? 0 : 1;
		}
	}
}

/* The value of a number's text, as strtod reads it. */
static double
number_value(const char *text, size_t len, uint64 mantissa, int digits, int exp10, bool negative)
{
	static const double pow10[] = {1e0,	 1e1,  1e2,	 1e3,  1e4,	 1e5,  1e6,	 1e7,
								   1e8,	 1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
								   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	char local[64];
	char *copy;
	double v;

	if (digits <= 19 && mantissa <= (UINT64CONST(1) << 53) && exp10 >= -22 && exp10 <= 22)
	{
		v = (double) mantissa;
		v = exp10 < 0 ? v / pow10[-exp10] : v * pow10[exp10];
		return negative ? -v : v;
	}
	copy = len < sizeof(local) ? local : palloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	v = strtod(copy, NULL);
	if (copy != local)
		pfree(copy);
	return v;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
parse_number(Cursor *c, FlatJsonValue *out)
{
	const char *start = c->s;
	bool negative = false;
	uint64 mantissa = 0;
	int digits = 0;
	int exp10 = 0;

	if (*c->s == '-')
	{
		negative = true;
		c->s++;
	}
	if (!is_digit(c))
		return false;
	if (*c->s == '0')
		c->s++;
	else
		read_digits(c, &mantissa, &digits, &exp10, false);
	if (c->s < c->end && *c->s == '.')
	{
		c->s++;
		if (!is_digit(c))
			return false;
		read_digits(c, &mantissa, &digits, &exp10, true);
	}
	if (c->s < c->end && (*c->s == 'e' || *c->s == 'E'))
	{
		int sign = 1;
		int e = 0;

		c->s++;
		if (c->s < c->end && (*c->s == '+' || *c->s == '-'))
			sign = *c->s++ == '-' ? -1 : 1;
		if (!is_digit(c))
			return false;
		while (is_digit(c))
		{
			e = Min(e * 10 + (*c->s - '0'), 100000);
			c->s++;
		}
		exp10 += sign * e;
	}
	if (out != NULL)
	{
		out->type = FLAT_JSON_NUMBER;
		out->number = number_value(start, c->s - start, mantissa, digits, exp10, negative);
	}
	return true;
}

static bool
parse_literal(Cursor *c, const char *word, FlatJsonType type, FlatJsonValue *out)
{
	size_t n = strlen(word);

	if ((size_t) (c->end - c->s) < n || memcmp(c->s, word, n) != 0)
		return false;
	c->s += n;
	if (out != NULL)
		out->type = type;
	return true;
}

/*
 * NaN, Infinity or -Infinity, which JSON has no words for but Python's
 * json module writes: read as numbers, so a line holding one is refused
 * for its number ("not a finite number"), not for its syntax.
 */
static bool
parse_non_finite(Cursor *c, FlatJsonValue *out)
{
	bool negative = *c->s == '-';

	c->s += negative ? 1 : 0;
	if (!negative && parse_literal(c, "NaN", FLAT_JSON_NUMBER, out))
	{
		if (out != NULL)
			out->number = get_float8_nan();
		return true;
	}
	if (!parse_literal(c, "Infinity", FLAT_JSON_NUMBER, out))
		return false;
	if (out != NULL)
		out->number = negative ? -get_float8_infinity() : get_float8_infinity();
	return true;
}

/* Room for one more element of a wanted array. */
static FlatJsonValue *
next_item(FlatJson *p)
{
	if (p->nitems == p->maxitems)
	{
		p->maxitems *= 2;
		p->items = repalloc(p->items, sizeof(FlatJsonValue) * p->maxitems);
	}
	return &p->items[p->nitems++];
}

/* An array (at its bracket); with `collect`, its elements kept in p->items. */
static bool
parse_array(Cursor *c, int depth, FlatJsonValue *out, bool collect)
{
	int first = c->p->nitems;
	int n = 0;

	c->s++;
	skip_ws(c);
	if (c->s < c->end && *c->s == ']')
		c->s++;
	else
		for (;;)
		{
			FlatJsonValue *item = collect ? next_item(c->p) : NULL;

			skip_ws(c);
			if (!parse_value(c, depth + 1, item, false))
				return false;
			n++;
			skip_ws(c);
			if (c->s >= c->end)
				return false;
			if (*c->s++ == ']')
				break;
			if (c->s[-1] != ',')
				return false;
		}
	if (out != NULL)
	{
		out->type = FLAT_JSON_ARRAY;
		out->first_item = first;
		out->nitems = collect ? n : 0;
	}
	return true;
}

/*
 * An object (at its brace).  At the top (field_of given) the values of the
 * wanted keys are kept; nested objects are only checked.
 */
static bool
parse_object(Cursor *c, int depth, FlatJsonFieldOf field_of, FlatJsonValue *values, bool *present)
{
	c->s++;
	skip_ws(c);
	if (c->s < c->end && *c->s == '}')
	{
		c->s++;
		return true;
	}
	for (;;)
	{
		FlatJsonValue key;
		int field = -1;

		if (c->s >= c->end || *c->s != '"' || !parse_string(c, field_of ? &key : NULL))
			return false;
		if (field_of != NULL)
		{
			field = field_of(key.string, key.length);
			c->p->strings.len = key.string - c->p->strings.data; /* keys are not kept */
		}
		skip_ws(c);
		if (c->s >= c->end || *c->s++ != ':')
			return false;
		skip_ws(c);
		if (!parse_value(c, depth + 1, field >= 0 ? &values[field] : NULL, true))
			return false;
		if (field >= 0)
			present[field] = true;
		skip_ws(c);
		if (c->s >= c->end)
			return false;
		if (*c->s++ == '}')
			return true;
		if (c->s[-1] != ',')
			return false;
		skip_ws(c);
	}
}

static bool
parse_value(Cursor *c, int depth, FlatJsonValue *out, bool collect)
{
	if (depth > FLAT_JSON_MAX_DEPTH || c->s >= c->end)
		return false;
	switch (*c->s)
	{
		case '{':
			if (out != NULL)
				out->type = FLAT_JSON_OBJECT;
			return parse_object(c, depth, NULL, NULL, NULL);
		case '[':
			return parse_array(c, depth, out, collect);
		case '"':
			return parse_string(c, out);
		case 't':
			return parse_literal(c, "true", FLAT_JSON_BOOL, out);
		case 'f':
			return parse_literal(c, "false", FLAT_JSON_BOOL, out);
		case 'n':
			return parse_literal(c, "null", FLAT_JSON_NULL, out);
		case 'N':
		case 'I':
			return parse_non_finite(c, out);
		case '-':
			if (c->end - c->s > 1 && c->s[1] == 'I')
				return parse_non_finite(c, out);
			return parse_number(c, out);
		default:
			return parse_number(c, out);
	}
}

FlatJsonResult
ss_flat_json_parse(FlatJson *p, const char *text, size_t len, FlatJsonFieldOf field_of,
				   FlatJsonValue *values, bool *present)
{
	Cursor c = {text, text + len, p};
	bool ok;

	/* decoded strings never outgrow their text, NULs included: no move */
	resetStringInfo(&p->strings);
	enlargeStringInfo(&p->strings, (int) len + 1);
	p->nitems = 0;
	skip_ws(&c);
	if (c.s < c.end && *c.s == '{')
		ok = parse_object(&c, 1, field_of, values, present);
	else
	{
		ok = parse_value(&c, 1, NULL, false);
		skip_ws(&c);
		return ok && c.s == c.end ? FLAT_JSON_NOT_OBJECT : FLAT_JSON_INVALID;
	}
	skip_ws(&c);
	return ok && c.s == c.end ? FLAT_JSON_OK : FLAT_JSON_INVALID;
}
