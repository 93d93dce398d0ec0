/*
 * tier_order.c
 *	  A silver day's rows in (symbol, time) order, as the export writes
 *	  them (tier_export.c), read linearly in bounded memory.
 *
 * The partition's (symbol, time) index has that order, but the heap read
 * through it costs a random page access per row (the heap is in arrival
 * order, every symbol on every page), most of the export's time.  So:
 *
 *	1. a sequential scan counts each symbol's rows and the memory they take
 *	   (a hash table of the symbols; a day of more than MAX_SYMBOLS is read
 *	   through the index instead, as a whole);
 *	2. the symbols, in byte order, are cut into runs (groups) whose rows
 *	   fit stocks_stream.lake_sort_mem; a symbol whose rows alone do not is
 *	   read through the index, that symbol only (WHERE symbol = $1);
 *	3. a second sequential scan keeps the first group's rows in memory and
 *	   writes each later group's to a temporary file of its own (a BufFile:
 *	   removed at the end of the transaction, after an error too); a scan
 *	   fills MAX_SPILL_FILES files at most, a larger day takes more scans;
 *	4. group by group: its rows in memory (the memory of the largest group,
 *	   taken once), each symbol's in a run of its own (its count from step
 *	   1), sorted by time (a check first: the heap is mostly in time order),
 *	   handed on.
 *
 * Everything reads with the statement's snapshot: the same rows each time
 * (the day is frozen before the export, and a snapshot sees what it saw);
 * rows that did not match the counts would stop the export with an ERROR.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/buffile.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "core/pg_compat.h"
#include "core/settings.h"
#include "tier/tier_order.h"
#include "tier/tier_sums.h"

/*
 * The symbols a day may have for the linear read: about 100 bytes each in
 * the hash table and the plan, 10 MB for 100,000 (far more tickers than a
 * market lists).  A day of more is read through the index.
 */
#define MAX_SYMBOLS 100000

/*
 * The groups one scan writes to files: each file buffers a block (8 kB),
 * 2 MB for 256.  A day of more groups (over 256 times lake_sort_mem) is
 * scanned once more for each further 256.
 */
#define MAX_SPILL_FILES 256

/* rows handed on between resets of their memory context */
#define ROWS_PER_RESET 1024

/* the slots of the cache of symbols (below): a power of 2 */
#define CACHE_BITS 10

typedef struct OrderSymbol
{
	TierSymbolKey key;
	int index;		   /* in OrderRead.sorted */
	int group;		   /* in OrderRead.groups */
	int64 rows;		   /* counted by the first scan */
	int64 tuple_bytes; /* its tuples' bytes, each MAXALIGNed */
	int64 next;		   /* its next slot in its group's items */
	int64 end;		   /* the slot after its last */
	int64 data_next;   /* where its next tuple goes in its group's arena */
	int64 data_end;	   /* the end of its tuples there */
} OrderSymbol;

typedef struct OrderGroup
{
	int first; /* its symbols: sorted[first .. first + nsymbols) */
	int nsymbols;
	int64 rows;
	int64 tuple_bytes;
	bool by_index; /* one symbol whose rows alone are over lake_sort_mem */
	BufFile *file; /* its rows while they wait their turn */
} OrderGroup;

/* a row of the group in memory, and its sort key */
typedef struct OrderItem
{
	TimestampTz time;
	HeapTupleHeader data;
	uint32 len;
} OrderItem;

/*
 * A row in its group's file: this header, then the tuple's bytes from
 * t_infomask2 on.  The header's transaction fields and t_ctid before it
 * are not written: what reads the row back (heap_deform_tuple) never
 * looks at them, as a MinimalTuple omits them too.
 */
#define SPILL_SKIP offsetof(HeapTupleHeaderData, t_infomask2)

typedef struct SpillHeader
{
	TimestampTz time;
	int32 symbol; /* index in OrderRead.sorted */
	uint32 len;
} SpillHeader;

/*
 * Each scan looks every row's symbol up: a symbol of up to 8 bytes (a
 * ticker) first in this direct-mapped cache, by its bytes as one word,
 * which saves hashing and comparing them through the hash table.
 */
typedef struct SymbolCache
{
	uint64 word[1 << CACHE_BITS];
	OrderSymbol *symbol[1 << CACHE_BITS];
} SymbolCache;

typedef struct OrderRead
{
	SilverTable table;
	char *partition;
	Relation rel;
	Snapshot snapshot;
	MemoryContext cxt;	   /* the read's: symbols, plan, files, group memory */
	MemoryContext row_cxt; /* a row's detoasted values; reset every few rows */
	HTAB *symbols;
	SymbolCache *cache;
	int nsymbols;
	OrderSymbol **sorted; /* in byte order */
	OrderGroup *groups;
	int ngroups;
	int64 max_rows;	  /* of the largest group read into memory */
	int64 max_bytes;  /* and of the largest group's tuples */
	OrderItem *items; /* the group in memory: its rows' slots */
	char *arena;	  /* and their tuples, each symbol's together */
	TierOrderRowFn fn;
	void *arg;
	int64 handed;
} OrderRead;

static void
rows_changed(OrderRead *r)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("stocks_stream._lake_export: the rows of stocks_stream.%s changed while they "
					"were read",
					r->partition),
			 errhint("The day stays in Postgres; the next tier_to_lake() exports it again.")));
}

/* Hand a row on, in the rows' memory context. */
static void
hand(OrderRead *r, TupleDesc desc, HeapTuple tuple)
{
	MemoryContext old = MemoryContextSwitchTo(r->row_cxt);

	CHECK_FOR_INTERRUPTS();
	r->fn(r->arg, desc, tuple);
	MemoryContextSwitchTo(old);
	if (++r->handed % ROWS_PER_RESET == 0)
		MemoryContextReset(r->row_cxt);
}

/* Every row query returns, in its order, handed on; the count of rows. */
static int64
read_cursor(OrderRead *r, const char *query, int nargs, Oid *argtypes, Datum *values)
{
	Portal portal = ss_tier_sums_open(query, nargs, argtypes, values, "_lake_export");
	int64 before = r->handed;

	while (ss_tier_sums_fetch(portal, r->table))
		for (uint64 i = 0; i < SPI_processed; i++)
			hand(r, SPI_tuptable->tupdesc, SPI_tuptable->vals[i]);
	ss_tier_sums_close_day(portal);
	return r->handed - before;
}

/* The whole day through the (symbol, time) index. */
static void
read_by_index(OrderRead *r)
{
	(void) read_cursor(r,
					   psprintf("SELECT * FROM stocks_stream.%s ORDER BY symbol, %s",
								quote_identifier(r->partition),
								ss_silver_object_time_column(r->table)),
					   0, NULL, NULL);
}

/* One symbol's rows through the index: a symbol larger than lake_sort_mem. */
static void
read_symbol_by_index(OrderRead *r, const OrderSymbol *s)
{
	Oid argtypes[1] = {TEXTOID};
	Datum values[1];
	char *query = psprintf("SELECT * FROM stocks_stream.%s WHERE symbol = $1 ORDER BY %s",
						   quote_identifier(r->partition), ss_silver_object_time_column(r->table));

	values[0] = PointerGetDatum(cstring_to_text_with_len(s->key.ptr, (int) s->key.len));
	if (read_cursor(r, query, 1, argtypes, values) != s->rows)
		rows_changed(r);
}

/*
 * The scan's next row (valid until the one after), its symbol's bytes (a
 * detoasted symbol in the rows' memory context) and, unless time is NULL,
 * its time; NULL at the end.
 */
static HeapTuple
next_row(OrderRead *r, TableScanDesc scan, TierSymbolKey *symbol, TimestampTz *time)
{
	HeapTuple tuple = heap_getnext(scan, ForwardScanDirection);
	TupleDesc desc = RelationGetDescr(r->rel);
	bool null_symbol, null_time = false;
	Datum d;
	MemoryContext old;
	text *s;

	CHECK_FOR_INTERRUPTS();
	if (tuple == NULL)
		return NULL;
	d = heap_getattr(tuple, 1, desc, &null_symbol);
	if (time != NULL)
		*time = DatumGetTimestampTz(heap_getattr(tuple, 2, desc, &null_time));
	if (null_symbol || null_time)
		rows_changed(r); /* both are NOT NULL */
	old = MemoryContextSwitchTo(r->row_cxt);
	s = DatumGetTextPP(d);
	MemoryContextSwitchTo(old);
	symbol->ptr = VARDATA_ANY(s);
	symbol->len = VARSIZE_ANY_EXHDR(s);
	return tuple;
}

/*
 * The entry of a symbol, entered if enter (*found false for a new one),
 * else NULL if the table has none.
 */
static OrderSymbol *
find_symbol(OrderRead *r, const TierSymbolKey *key, bool enter, bool *found)
{
	uint64 word = 0;
	int slot = -1;
	OrderSymbol *s;

	if (key->len <= sizeof(word))
	{
		memcpy(&word, key->ptr, key->len);
		slot = (int) (((word ^ key->len) * UINT64CONST(0x9E3779B97F4A7C15)) >> (64 - CACHE_BITS));
		s = r->cache->symbol[slot];
		if (s != NULL && r->cache->word[slot] == word && s->key.len == key->len)
		{
			*found = true;
			return s;
		}
	}
	if (enter)
		s = ss_tier_sums_symbol(r->symbols, key->ptr, key->len, found);
	else
		s = hash_search(r->symbols, key, HASH_FIND, found);
	if (slot >= 0 && s != NULL)
	{
		r->cache->word[slot] = word;
		r->cache->symbol[slot] = s;
	}
	return s;
}

/* Count a row of the first scan; false past MAX_SYMBOLS symbols. */
static bool
count_row(OrderRead *r, const TierSymbolKey *key, uint32 len)
{
	bool found;
	OrderSymbol *s = find_symbol(r, key, true, &found);

	if (!found)
	{
		s->rows = s->tuple_bytes = 0;
		if (++r->nsymbols > MAX_SYMBOLS)
			return false;
	}
	s->rows++;
	s->tuple_bytes += MAXALIGN(len);
	return true;
}

/*
 * The first scan: each symbol's rows and bytes.  False if the day has more
 * than MAX_SYMBOLS symbols.
 */
static bool
count_symbols(OrderRead *r)
{
	TableScanDesc scan = table_beginscan_strat(r->rel, r->snapshot, 0, NULL, true, false);
	bool fits = true;
	int64 n = 0;
	TierSymbolKey key;
	HeapTuple tuple;

	r->symbols = ss_tier_sums_symbols(sizeof(OrderSymbol));
	r->cache = palloc0(sizeof(SymbolCache));
	while (fits && (tuple = next_row(r, scan, &key, NULL)) != NULL)
	{
		fits = count_row(r, &key, tuple->t_len);
		if (++n % ROWS_PER_RESET == 0)
			MemoryContextReset(r->row_cxt);
	}
	table_endscan(scan);
	return fits;
}

/* Symbols in byte order (the order of Parquet's statistics of strings). */
static int
symbol_cmp(const void *a, const void *b)
{
	const TierSymbolKey *x = &(*(OrderSymbol *const *) a)->key;
	const TierSymbolKey *y = &(*(OrderSymbol *const *) b)->key;
	int c = memcmp(x->ptr, y->ptr, Min(x->len, y->len));

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* What a symbol's or a group's rows take in memory: their slots and tuples. */
static int64
sort_bytes(int64 rows, int64 tuple_bytes)
{
	return rows * (int64) sizeof(OrderItem) + tuple_bytes;
}

static void
sort_symbols(OrderRead *r)
{
	HASH_SEQ_STATUS seq;
	OrderSymbol *s;
	int i = 0;

	r->sorted = palloc(Max(r->nsymbols, 1) * sizeof(OrderSymbol *));
	hash_seq_init(&seq, r->symbols);
	while ((s = hash_seq_search(&seq)) != NULL)
		r->sorted[i++] = s;
	qsort(r->sorted, r->nsymbols, sizeof(OrderSymbol *), symbol_cmp);
	for (i = 0; i < r->nsymbols; i++)
		r->sorted[i]->index = i;
}

/*
 * The groups: runs of symbols in byte order, each run's rows within
 * lake_sort_mem; each symbol's slots in its group's items.
 */
static void
plan_groups(OrderRead *r)
{
	int64 budget = (int64) ss_settings_lake_sort_kb * 1024;
	OrderGroup *g = NULL;

	sort_symbols(r);
	r->groups = palloc0(Max(r->nsymbols, 1) * sizeof(OrderGroup));
	for (int i = 0; i < r->nsymbols; i++)
	{
		OrderSymbol *s = r->sorted[i];
		int64 bytes = sort_bytes(s->rows, s->tuple_bytes);
		bool alone = bytes > budget;

		if (g == NULL || alone || g->by_index ||
			sort_bytes(g->rows, g->tuple_bytes) + bytes > budget)
		{
			g = &r->groups[r->ngroups++];
			g->first = i;
			g->by_index = alone;
		}
		s->group = (int) (g - r->groups);
		s->next = g->rows;
		s->data_next = g->tuple_bytes;
		g->nsymbols++;
		g->rows += s->rows;
		g->tuple_bytes += s->tuple_bytes;
		s->end = g->rows;
		s->data_end = g->tuple_bytes;
		if (!g->by_index)
		{
			r->max_rows = Max(r->max_rows, g->rows);
			r->max_bytes = Max(r->max_bytes, g->tuple_bytes);
		}
	}
}

/*
 * The slot of a symbol's next row in the group in memory, and room for its
 * tuple after the symbol's last: each symbol's rows are read in order from
 * consecutive memory when they are handed on.
 */
static OrderItem *
place(OrderRead *r, OrderSymbol *s, TimestampTz time, uint32 len)
{
	OrderItem *item;

	if (s->next >= s->end || s->data_next + (int64) MAXALIGN(len) > s->data_end)
		rows_changed(r);
	item = &r->items[s->next++];
	item->time = time;
	item->len = len;
	item->data = (HeapTupleHeader) (r->arena + s->data_next);
	s->data_next += MAXALIGN(len);
	return item;
}

static void
spill(OrderRead *r, const OrderSymbol *s, TimestampTz time, HeapTuple tuple)
{
	SpillHeader h = {time, s->index, tuple->t_len};
	BufFile *file = r->groups[s->group].file;

	BufFileWrite(file, &h, sizeof(h));
	BufFileWrite(file, (char *) tuple->t_data + SPILL_SKIP, tuple->t_len - SPILL_SKIP);
}

/*
 * The second scan, for groups first .. last - 1: the first's rows into
 * memory, the others' into their files; other rows are passed over.
 */
static void
scan_groups(OrderRead *r, int first, int last)
{
	TableScanDesc scan = table_beginscan_strat(r->rel, r->snapshot, 0, NULL, true, false);
	int64 n = 0;
	TierSymbolKey key;
	TimestampTz time;
	HeapTuple tuple;

	for (int g = first + 1; g < last; g++)
		if (!r->groups[g].by_index)
			r->groups[g].file = BufFileCreateTemp(false);
	while ((tuple = next_row(r, scan, &key, &time)) != NULL)
	{
		bool found;
		OrderSymbol *s = find_symbol(r, &key, false, &found);

		if (s == NULL)
			rows_changed(r);
		if (s->group == first)
			memcpy(place(r, s, time, tuple->t_len)->data, tuple->t_data, tuple->t_len);
		else if (s->group > first && s->group < last && !r->groups[s->group].by_index)
			spill(r, s, time, tuple);
		if (++n % ROWS_PER_RESET == 0)
			MemoryContextReset(r->row_cxt);
	}
	table_endscan(scan);
}

static void
read_exact(BufFile *file, void *ptr, size_t size)
{
	if (BufFileRead(file, ptr, size) != size)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("stocks_stream._lake_export: could not read a temporary file of a "
							   "day's rows")));
}

/* A spilled group's rows from its file into memory; the file is closed. */
static void
load_group(OrderRead *r, OrderGroup *g)
{
	if (BufFileSeek(g->file, 0, 0, SEEK_SET) != 0)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("stocks_stream._lake_export: could not rewind a temporary file of a "
							   "day's rows")));
	for (int64 i = 0; i < g->rows; i++)
	{
		SpillHeader h;

		CHECK_FOR_INTERRUPTS();
		read_exact(g->file, &h, sizeof(h));
		if (h.symbol < g->first || h.symbol >= g->first + g->nsymbols || h.len <= SPILL_SKIP)
			rows_changed(r);
		read_exact(g->file,
				   (char *) place(r, r->sorted[h.symbol], h.time, h.len)->data + SPILL_SKIP,
				   h.len - SPILL_SKIP);
	}
	BufFileClose(g->file);
	g->file = NULL;
}

static int
item_cmp(const void *a, const void *b)
{
	TimestampTz x = ((const OrderItem *) a)->time;
	TimestampTz y = ((const OrderItem *) b)->time;

	return (x > y) - (x < y);
}

static void
sort_by_time(OrderItem *items, int64 n)
{
	for (int64 i = 1; i < n; i++)
		if (items[i].time < items[i - 1].time)
		{
			qsort(items, n, sizeof(OrderItem), item_cmp);
			return;
		}
}

/* The group in memory, symbol by symbol, each sorted by time, handed on. */
static void
hand_group(OrderRead *r, const OrderGroup *g)
{
	TupleDesc desc = RelationGetDescr(r->rel);

	for (int i = g->first; i < g->first + g->nsymbols; i++)
	{
		OrderSymbol *s = r->sorted[i];
		OrderItem *items = r->items + (s->end - s->rows);

		if (s->next != s->end)
			rows_changed(r);
		sort_by_time(items, s->rows);
		for (int64 k = 0; k < s->rows; k++)
		{
			HeapTupleData tuple = {0};

			tuple.t_len = items[k].len;
			tuple.t_data = items[k].data;
			tuple.t_tableOid = RelationGetRelid(r->rel);
			ItemPointerSetInvalid(&tuple.t_self);
			hand(r, desc, &tuple);
		}
	}
}

/*
 * The groups from first on that one scan serves: first (in memory) and up
 * to MAX_SPILL_FILES more in files; the index of the group after them.
 */
static int
scan_end(const OrderRead *r, int first)
{
	int files = 0;
	int g;

	for (g = first + 1; g < r->ngroups; g++)
		if (!r->groups[g].by_index && ++files > MAX_SPILL_FILES)
			break;
	return g;
}

/*
 * Each group in turn; the memory of the largest group read into memory
 * taken once, for each.
 */
static void
read_groups(OrderRead *r)
{
	int first = 0;

	r->items = MemoryContextAllocHuge(r->cxt, Max(r->max_rows, 1) * sizeof(OrderItem));
	r->arena = MemoryContextAllocHuge(r->cxt, Max(r->max_bytes, 1));

	while (first < r->ngroups)
	{
		int last;

		if (r->groups[first].by_index)
		{
			read_symbol_by_index(r, r->sorted[r->groups[first].first]);
			first++;
			continue;
		}
		last = scan_end(r, first);
		scan_groups(r, first, last);
		hand_group(r, &r->groups[first]);
		for (int g = first + 1; g < last; g++)
		{
			if (r->groups[g].by_index)
				read_symbol_by_index(r, r->sorted[r->groups[g].first]);
			else
			{
				load_group(r, &r->groups[g]);
				hand_group(r, &r->groups[g]);
			}
		}
		first = last;
	}
}

/*
 * The partition, locked as a query would, if the caller may read it; the
 * statement's snapshot.  False if a scan here cannot stand for a query:
 * the partition is not a plain heap table, or row-level security applies.
 */
static bool
open_partition(OrderRead *r)
{
	AclResult acl;

	r->rel = table_openrv(makeRangeVar("stocks_stream", r->partition, -1), AccessShareLock);
	acl = pg_class_aclcheck(RelationGetRelid(r->rel), GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(r->rel));
	ss_silver_object_check_desc(r->table, RelationGetDescr(r->rel));
	r->snapshot =
		RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	return r->rel->rd_rel->relkind == RELKIND_RELATION &&
		   r->rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
		   check_enable_rls(RelationGetRelid(r->rel), InvalidOid, true) != RLS_ENABLED;
}

/*
 * Hand each row of a day's partition to fn, in (symbol, time) order:
 * symbols in byte order, a symbol's rows by time.
 */
void
ss_tier_order_read(SilverTable t, DateADT day, TierOrderRowFn fn, void *arg)
{
	OrderRead r = {0};
	MemoryContext old;

	r.table = t;
	r.fn = fn;
	r.arg = arg;
	r.cxt = AllocSetContextCreate(CurrentMemoryContext, "stocks_stream lake order",
								  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(r.cxt);
	r.row_cxt = AllocSetContextCreate(r.cxt, "stocks_stream lake rows", ALLOCSET_DEFAULT_SIZES);
	r.partition = ss_tier_sums_partition(t, day);
	if (open_partition(&r) && count_symbols(&r))
	{
		plan_groups(&r);
		read_groups(&r);
	}
	else
		read_by_index(&r);
	UnregisterSnapshot(r.snapshot);
	table_close(r.rel, NoLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(r.cxt);
}
