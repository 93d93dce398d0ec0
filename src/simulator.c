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

#include "simulator.h"

#define STEP_YEARS (1.0 / (252.0 * 6.5 * 3600.0))
#define MS_PER_DAY INT64CONST(86400000)

typedef struct SymbolState
{
	const char *symbol;
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
sim_create(char **symbols, int nsymbols, int64 seed, int quote_every)
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
 * Append a fixed-point number with `decimals` digits after the point.  The
 * simulator writes millions of numbers a second; this is several times
 * faster than printf's %f and prints the same text.
 */
static void
append_fixed(StringInfo out, double value, int decimals)
{
	static const int64 scale[] = {1, 10, 100, 1000, 10000};
	int64 scaled = (int64) llround(value * scale[decimals]);
	uint64 magnitude = scaled < 0 ? (uint64) -scaled : (uint64) scaled;
	char digits[24];
	int n;

	if (scaled < 0)
		appendStringInfoChar(out, '-');
	n = pg_ulltoa_n(magnitude / scale[decimals], digits);
	appendBinaryStringInfo(out, digits, n);
	if (decimals > 0)
	{
		uint64 frac = magnitude % scale[decimals];

		appendStringInfoChar(out, '.');
		for (int d = decimals - 1; d >= 0; d--)
		{
			digits[d] = '0' + frac % 10;
			frac /= 10;
		}
		appendBinaryStringInfo(out, digits, decimals);
	}
}

static void
append_field(StringInfo out, const char *name, double value, int decimals)
{
	appendStringInfoString(out, name);
	append_fixed(out, value, decimals);
}

static void
write_quote(const SymbolState *s, int64 now_ms, StringInfo out)
{
	double c = cents(s->price);
	int64 secs = now_ms / 1000;

	append_field(out, "{\"c\":", c, 2);
	append_field(out, ",\"d\":", c - s->prev_close, 2);
	append_field(out, ",\"dp\":", (c - s->prev_close) / s->prev_close * 100.0, 4);
	append_field(out, ",\"h\":", s->day_high, 2);
	append_field(out, ",\"l\":", s->day_low, 2);
	append_field(out, ",\"o\":", s->day_open, 2);
	append_field(out, ",\"pc\":", s->prev_close, 2);
	append_field(out, ",\"t\":", (double) secs, 0);
	appendStringInfoString(out, ",\"symbol\":\"");
	appendStringInfoString(out, s->symbol);
	append_field(out, "\",\"fetched_time\":", (double) secs, 0);
	appendStringInfoChar(out, '}');
}

static void
write_trade(Simulator *sim, const SymbolState *s, int64 now_ms, StringInfo out)
{
	/* computed apart: Max() evaluates its arguments twice */
	double draw = round(exp(3.5 + 1.2 * std_normal(sim)));
	double volume = Max(1.0, draw);

	appendStringInfoString(out, "{\"s\":\"");
	appendStringInfoString(out, s->symbol);
	append_field(out, "\",\"p\":", cents(s->price), 2);
	append_field(out, ",\"t\":", (double) now_ms, 0);
	append_field(out, ",\"v\":", volume, 0);
	appendStringInfoString(out, ",\"c\":[\"1\"]}");
}

/*
 * Append the next message (a quote or a trade) to `out`, which the caller
 * resets, and return its symbol.
 */
const char *
sim_next(Simulator *sim, int64 now_ms, StringInfo out)
{
	SymbolState *s = &sim->symbols[sim->step % sim->nsymbols];
	int64 day = now_ms / MS_PER_DAY;

	sim->step++;
	if (day != s->day)
		roll_day(s, day);
	step_price(sim, s);
	s->turns++;
	if (s->turns % sim->quote_every == 0)
		write_quote(s, now_ms, out);
	else
		write_trade(sim, s, now_ms, out);
	return s->symbol;
}
