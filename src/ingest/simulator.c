/*
 * simulator.c
 *	  A seeded market simulator producing Finnhub-shaped messages.
 *
 * Each symbol follows a geometric Brownian motion: every step is one
 * second of trading time, S' = S * exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z)
 * with Z standard normal (Box-Muller over Postgres' pg_prng).  Start price,
 * volatility and drift per symbol are drawn from the same seeded stream, so
 * the same seed and symbols give the same sequence of prices and volumes;
 * only the timestamps follow the wall clock.
 *
 * Symbols take turns.  Each turn is a trade {"s","p","t","v","c"}, and
 * every quote_every-th turn of a symbol is instead a quote with the fields
 * of Finnhub's /quote plus symbol and fetched_time.  The trading day (UTC)
 * keeps open, high and low consistent with the printed prices; at a new day
 * the last price becomes the previous close.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "utils/builtins.h"

#include "core/symbol.h"
#include "ingest/simulator.h"

#define STEP_YEARS (1.0 / (252.0 * 6.5 * 3600.0))
#define MS_PER_DAY INT64CONST(86400000)

typedef struct SymbolState
{
	const char *symbol;
	int symbol_len;
	double price;
	double sigma;
	double mu;
	double day_open;
	double day_high;
	double day_low;
	double prev_close;
	int64 day;
	int64 turns;
} SymbolState;

struct Simulator
{
	pg_prng_state rng;
	bool have_spare;
	double spare;
	int quote_every;
	int nsymbols;
	int64 step;
	SymbolState *symbols;
};

static double
std_normal(Simulator *sim)
{
	double u1, u2, r;

	if (sim->have_spare)
	{
		sim->have_spare = false;
		return sim->spare;
	}
	do
		u1 = pg_prng_double(&sim->rng);
	while (u1 <= 0.0);
	u2 = pg_prng_double(&sim->rng);
	r = sqrt(-2.0 * log(u1));
	sim->spare = r * sin(2.0 * M_PI * u2);
	sim->have_spare = true;
	return r * cos(2.0 * M_PI * u2);
}

/* Prices are quoted in cents. */
static double
cents(double price)
{
	return round(price * 100.0) / 100.0;
}

Simulator *
ss_simulator_create(char **symbols, int nsymbols, int64 seed, int quote_every)
{
	Simulator *sim = palloc0(sizeof(Simulator));

	pg_prng_seed(&sim->rng, (uint64) seed);
	sim->quote_every = Max(quote_every, 1);
	sim->nsymbols = nsymbols;
	sim->symbols = palloc0(sizeof(SymbolState) * nsymbols);
	for (int i = 0; i < nsymbols; i++)
	{
		SymbolState *s = &sim->symbols[i];

		s->symbol = pstrdup(symbols[i]);
		s->symbol_len = strlen(symbols[i]);
		/* the SQL API checked them; MAX_MESSAGE relies on it */
		if (!ss_symbol_valid(s->symbol, s->symbol_len))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("stocks_stream: invalid symbol \"%s\"", symbols[i]),
							errhint("Symbols are " SYMBOL_RULE ".")));
		s->price = cents(20.0 + 480.0 * pg_prng_double(&sim->rng));
		s->sigma = 0.15 + 0.45 * pg_prng_double(&sim->rng);
		s->mu = 0.10 * (pg_prng_double(&sim->rng) - 0.5);
		s->prev_close = cents(s->price * exp(0.02 * std_normal(sim)));
		s->day = -1;
	}
	return sim;
}

static void
roll_day(SymbolState *s, int64 day)
{
	if (s->day >= 0)
		s->prev_close = cents(s->price);
	s->day = day;
	s->day_open = s->day_high = s->day_low = cents(s->price);
}

static void
step_price(Simulator *sim, SymbolState *s)
{
	double z = std_normal(sim);
	double p;

	s->price *=
		exp((s->mu - 0.5 * s->sigma * s->sigma) * STEP_YEARS + s->sigma * sqrt(STEP_YEARS) * z);
	s->price = Max(s->price, 0.01);
	p = cents(s->price);
	s->day_high = Max(s->day_high, p);
	s->day_low = Min(s->day_low, p);
}

/*
 * The writers below put text at a cursor into space ss_simulator_next reserved in
 * the output buffer, and return the advanced cursor: the simulator writes
 * millions of messages a second, and StringInfo's per-append length and
 * capacity checks were a tenth of the worker's time.  A message is at most
 * nine numbers of up to 26 characters, the field names and a symbol of at
 * most SYMBOL_MAX_LEN characters; MAX_MESSAGE leaves room over.
 */
#define MAX_MESSAGE 512

static char *
put_text(char *p, const char *text, size_t len)
{
	memcpy(p, text, len);
	return p + len;
}

#define PUT_LITERAL(p, literal) put_text((p), (literal), sizeof(literal) - 1)

/*
 * A fixed-point number with `decimals` digits after the point: the same
 * text as printf's %.*f, several times faster.
 */
static char *
put_fixed(char *p, double value, int decimals)
{
	static const int64 scale[] = {1, 10, 100, 1000, 10000};
	int64 scaled = (int64) llround(value * scale[decimals]);
	uint64 magnitude = scaled < 0 ? (uint64) -scaled : (uint64) scaled;

	if (scaled < 0)
		*p++ = '-';
	p += pg_ulltoa_n(magnitude / scale[decimals], p);
	if (decimals > 0)
	{
		uint64 frac = magnitude % scale[decimals];

		*p++ = '.';
		for (int d = decimals - 1; d >= 0; d--)
		{
			p[d] = '0' + frac % 10;
			frac /= 10;
		}
		p += decimals;
	}
	return p;
}

static char *
write_quote(const SymbolState *s, int64 now_ms, char *p)
{
	double c = cents(s->price);
	double secs = (double) (now_ms / 1000);

	p = put_fixed(PUT_LITERAL(p, "{\"c\":"), c, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"d\":"), c - s->prev_close, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"dp\":"), (c - s->prev_close) / s->prev_close * 100.0, 4);
	p = put_fixed(PUT_LITERAL(p, ",\"h\":"), s->day_high, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"l\":"), s->day_low, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"o\":"), s->day_open, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"pc\":"), s->prev_close, 2);
	p = put_fixed(PUT_LITERAL(p, ",\"t\":"), secs, 0);
	p = put_text(PUT_LITERAL(p, ",\"symbol\":\""), s->symbol, s->symbol_len);
	p = put_fixed(PUT_LITERAL(p, "\",\"fetched_time\":"), secs, 0);
	return PUT_LITERAL(p, "}");
}

static char *
write_trade(Simulator *sim, const SymbolState *s, int64 now_ms, char *p)
{
	/* computed apart: Max() evaluates its arguments twice */
	double draw = round(exp(3.5 + 1.2 * std_normal(sim)));
	double volume = Max(1.0, draw);

	p = put_text(PUT_LITERAL(p, "{\"s\":\""), s->symbol, s->symbol_len);
	p = put_fixed(PUT_LITERAL(p, "\",\"p\":"), cents(s->price), 2);
	p = put_fixed(PUT_LITERAL(p, ",\"t\":"), (double) now_ms, 0);
	p = put_fixed(PUT_LITERAL(p, ",\"v\":"), volume, 0);
	return PUT_LITERAL(p, ",\"c\":[\"1\"]}");
}

/*
 * Append the next message (a quote or a trade) to `out`, which the caller
 * resets, and return its symbol.
 */
const char *
ss_simulator_next(Simulator *sim, int64 now_ms, StringInfo out)
{
	SymbolState *s = &sim->symbols[sim->step % sim->nsymbols];
	int64 day = now_ms / MS_PER_DAY;
	char *start;
	char *end;

	sim->step++;
	if (day != s->day)
		roll_day(s, day);
	step_price(sim, s);
	s->turns++;
	enlargeStringInfo(out, MAX_MESSAGE);
	start = out->data + out->len;
	if (s->turns % sim->quote_every == 0)
		end = write_quote(s, now_ms, start);
	else
		end = write_trade(sim, s, now_ms, start);
	Assert(end - start < MAX_MESSAGE);
	out->len += end - start;
	out->data[out->len] = '\0';
	return s->symbol;
}
