/*
 * tier_sums.c
 *	  What the tiering functions share: rows and checksums per symbol (the
 *	  comparison of a day in Postgres with its objects in the lake), the
 *	  name of a day's partition, a hash table of symbols, an SPI cursor
 *	  read a batch at a time, and the crash points of the crash tests.
 *
 * Rows come sorted by symbol (the export's order, tier_order.c, and the
 * objects written in that order), so a symbol's sums are the last
 * entry of the list or a new one; a symbol met twice (an object out of
 * order) makes two entries, which the SQL that compares adds up.
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"

#include "core/settings.h"
#include "tier/tier_sums.h"

List *
ss_tier_sums_add(List *sums, const SilverRow *row)
{
	size_t len;
	const char *symbol = ss_silver_object_row_symbol(row, &len);
	TierSum *last = sums != NIL ? llast(sums) : NULL;

	if (last == NULL || strlen(last->symbol) != len || memcmp(last->symbol, symbol, len) != 0)
	{
		last = palloc0(sizeof(TierSum));
		last->symbol = pnstrdup(symbol, len);
		sums = lappend(sums, last);
	}
	last->rows++;
	last->checksum += ss_silver_object_row_hash(row);
	return sums;
}

typedef struct SymbolEntry
{
	TierSymbolKey key; /* ptr: the entry's own copy of the symbol */
	TierSum *sum;
} SymbolEntry;

static uint32
symbol_hash(const void *key, Size keysize)
{
	const TierSymbolKey *k = key;

	return hash_bytes((const unsigned char *) k->ptr, (int) k->len);
}

static int
symbol_match(const void *a, const void *b, Size keysize)
{
	const TierSymbolKey *x = a, *y = b;

	return x->len == y->len && memcmp(x->ptr, y->ptr, x->len) == 0 ? 0 : 1;
}

/*
 * A hash table of symbols, in the current memory context: entries of
 * entrysize bytes, each beginning with its TierSymbolKey.
 */
HTAB *
ss_tier_sums_symbols(Size entrysize)
{
	HASHCTL ctl = {0};

	ctl.keysize = sizeof(TierSymbolKey);
	ctl.entrysize = entrysize;
	ctl.hash = symbol_hash;
	ctl.match = symbol_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create("stocks_stream lake symbols", 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * The entry of a symbol (len bytes at ptr); the key of a new one (*found
 * false, the rest of it for the caller to set) points to a copy of the
 * symbol made in the current memory context, NUL-terminated.
 */
void *
ss_tier_sums_symbol(HTAB *symbols, const char *ptr, size_t len, bool *found)
{
	TierSymbolKey key = {ptr, len};
	TierSymbolKey *e = hash_search(symbols, &key, HASH_ENTER, found);

	if (!*found)
		e->ptr = pnstrdup(ptr, len); /* same bytes, same hash */
	return e;
}

/*
 * ss_tier_sums_add for rows in any order (an unordered scan): each symbol
 * one entry, found through *symbols (made on the first row, in the
 * current memory context, as the entries are).
 */
List *
ss_tier_sums_add_any(HTAB **symbols, List *sums, const SilverRow *row)
{
	size_t len;
	const char *symbol = ss_silver_object_row_symbol(row, &len);
	SymbolEntry *e;
	bool found;

	if (*symbols == NULL)
		*symbols = ss_tier_sums_symbols(sizeof(SymbolEntry));
	e = ss_tier_sums_symbol(*symbols, symbol, len, &found);
	if (!found)
	{
		e->sum = palloc0(sizeof(TierSum));
		e->sum->symbol = (char *) e->key.ptr;
		sums = lappend(sums, e->sum);
	}
	e->sum->rows++;
	e->sum->checksum += ss_silver_object_row_hash(row);
	return sums;
}

/* One result row per symbol: the lead columns, then symbol, rows, checksum. */
void
ss_tier_sums_emit(List *sums, ReturnSetInfo *rsinfo, Datum *lead, int nlead)
{
	ListCell *lc;

	foreach (lc, sums)
	{
		TierSum *s = lfirst(lc);
		Datum values[8];
		bool nulls[8] = {0};

		Assert(nlead + 3 <= lengthof(values));
		for (int i = 0; i < nlead; i++)
			values[i] = lead[i];
		values[nlead] = CStringGetTextDatum(s->symbol);
		values[nlead + 1] = Int64GetDatum(s->rows);
		values[nlead + 2] = Int64GetDatum((int64) s->checksum);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

SilverTable
ss_tier_sums_table_arg(FunctionCallInfo fcinfo, int arg, const char *fn)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("stocks_stream.%s: table_name must not be NULL", fn)));
	return ss_silver_object_table(text_to_cstring(PG_GETARG_TEXT_PP(arg)));
}

/* The name of a day's partition: trades_YYYYMMDD. */
char *
ss_tier_sums_partition(SilverTable t, DateADT day)
{
	int y, m, d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	return psprintf("%s_%04d%02d%02d", t == SILVER_TRADES ? "trades" : "quotes", y, m, d);
}

#define FETCH_ROWS 1000

/*
 * SPI connected, and a read-only cursor over query (its parameters, if
 * any, of argtypes and values), read a batch at a time.
 */
Portal
ss_tier_sums_open(const char *query, int nargs, Oid *argtypes, Datum *values, const char *fn)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream.%s: SPI_connect failed", fn)));
	return SPI_cursor_open_with_args(NULL, query, nargs, argtypes, values, NULL, true,
									 CURSOR_OPT_NO_SCROLL);
}

/*
 * A cursor over a day's partition in no order: a sequential scan, as the
 * verification's sums need no order (tier_order.c reads the export's).
 */
Portal
ss_tier_sums_open_day(SilverTable t, DateADT day, const char *fn)
{
	const char *part = quote_identifier(ss_tier_sums_partition(t, day));

	return ss_tier_sums_open(psprintf("SELECT * FROM stocks_stream.%s", part), 0, NULL, NULL, fn);
}

/* The next batch of the day's rows into SPI_tuptable; false at the end. */
bool
ss_tier_sums_fetch(Portal portal, SilverTable t)
{
	CHECK_FOR_INTERRUPTS();
	if (SPI_tuptable != NULL)
		SPI_freetuptable(SPI_tuptable);
	SPI_cursor_fetch(portal, true, FETCH_ROWS);
	if (SPI_processed == 0)
		return false;
	ss_silver_object_check_desc(t, SPI_tuptable->tupdesc);
	return true;
}

void
ss_tier_sums_close_day(Portal portal)
{
	SPI_cursor_close(portal);
	SPI_finish();
}

/*
 * For the crash tests: when stocks_stream.test_crash_point (superuser-only,
 * hidden) names this point, the backend kills itself with SIGKILL, so the
 * server goes through crash recovery as after a real crash.
 */
void
ss_tier_sums_crash_point(const char *point)
{
	if (ss_settings_test_crash_point == NULL || strcmp(ss_settings_test_crash_point, point) != 0)
		return;
	ereport(LOG, (errmsg("stocks_stream.tier_to_lake: crashing at \"%s\" "
						 "(stocks_stream.test_crash_point)",
						 point)));
	kill(MyProcPid, SIGKILL);
	for (;;)
		pg_usleep(1000000L);
}
