/*
 * silver_object.c
 *	  Silver rows as typed Parquet objects through lake/parquet_ffi's C ABI:
 *	  a row of stocks_stream.quotes or trades becomes one cell per column
 *	  (src/lake/README.md, "Silver objects"), and a row read back from an
 *	  object becomes the same cells, so one checksum serves both sides.
 *
 * A row's checksum is a 64-bit hash (hash_bytes_extended) of a canonical
 * encoding of its cells: for each column a null flag, then the value's
 * bytes (8 for integers, timestamps and doubles, the IEEE bits of a double;
 * a length and the bytes of a string; a count and each element of a
 * list).  Tiering adds the checksums of a symbol's rows (modulo 2^64), so
 * the order of rows never matters and a row missing, changed or doubled
 * does.
 *
 * The library's memory is malloc's: a writer and a reader are freed with
 * the memory context they were made in (a reset callback), so an ERROR
 * leaks nothing.  No Rust panic crosses into the backend (the library
 * catches them all).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/pg_compat.h"
#include "core/settings.h"
#include "lake/silver_object.h"

/* the columns of each table, in its order: name and type */
typedef struct SilverColumn
{
	const char *name;
	Oid type;
	bool nullable;
} SilverColumn;

static const SilverColumn trades_columns[] = {
	{"symbol", TEXTOID, false},			  {"trade_time", TIMESTAMPTZOID, false},
	{"price", FLOAT8OID, false},		  {"volume", FLOAT8OID, false},
	{"conditions", TEXTARRAYOID, false},  {"source_topic", TEXTOID, false},
	{"source_partition", INT4OID, false}, {"source_offset", INT8OID, false},
	{"loaded_at", TIMESTAMPTZOID, false},
};

static const SilverColumn quotes_columns[] = {
	{"symbol", TEXTOID, false},		   {"quote_time", TIMESTAMPTZOID, false},
	{"price", FLOAT8OID, false},	   {"change", FLOAT8OID, true},
	{"change_pct", FLOAT8OID, true},   {"day_high", FLOAT8OID, false},
	{"day_low", FLOAT8OID, false},	   {"day_open", FLOAT8OID, false},
	{"prev_close", FLOAT8OID, false},  {"fetched_at", TIMESTAMPTZOID, true},
	{"source_topic", TEXTOID, false},  {"source_partition", INT4OID, false},
	{"source_offset", INT8OID, false}, {"loaded_at", TIMESTAMPTZOID, false},
};

#define MAX_COLUMNS lengthof(quotes_columns)

/* microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch */
#define UNIX_TO_PG_USECS ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static const SilverColumn *
columns_of(SilverTable t, int *n)
{
	if (t == SILVER_TRADES)
	{
		*n = lengthof(trades_columns);
		return trades_columns;
	}
	*n = lengthof(quotes_columns);
	return quotes_columns;
}

SilverTable
ss_silver_object_table(const char *name)
{
	if (name != NULL && strcmp(name, "trades") == 0)
		return SILVER_TRADES;
	if (name != NULL && strcmp(name, "quotes") == 0)
		return SILVER_QUOTES;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("stocks_stream: \"%s\" is not a silver table", name ? name : "(null)"),
					errhint("The silver tables are quotes and trades.")));
	return SILVER_TRADES;
}

const char *
ss_silver_object_time_column(SilverTable t)
{
	return t == SILVER_TRADES ? "trade_time" : "quote_time";
}

/* The rows a scan reads must be the table's columns, as this file knows them. */
void
ss_silver_object_check_desc(SilverTable t, TupleDesc desc)
{
	int n;
	const SilverColumn *cols = columns_of(t, &n);

	if (desc->natts != n)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("stocks_stream: a silver row has %d columns, not the %d tiering "
							   "writes",
							   desc->natts, n)));
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (a->atttypid != cols[i].type || strcmp(NameStr(a->attname), cols[i].name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("stocks_stream: silver column %d is \"%s\", not the \"%s\" tiering "
							"writes",
							i + 1, NameStr(a->attname), cols[i].name)));
	}
}

#ifdef SS_HAVE_PARQUET
#include "ss_parquet_ffi.h"

#define ERRLEN 512

struct SilverRow
{
	SilverTable table;
	int ncols;
	const SilverColumn *cols;
	SsPqCell cells[MAX_COLUMNS];
	SsPqStr *items; /* the list cell's strings of a row from a tuple */
	int items_cap;
};

struct SilverWriter
{
	SsPqSilverWriter *w;
	uint8_t *data; /* the finished object */
	size_t len;
	MemoryContextCallback free_cb;
};

struct SilverReader
{
	SsPqSilverReader *r;
	const char *key;
	MemoryContextCallback free_cb;
};

static void
library_error(const char *what, const char *key, const char *err)
{
	if (key != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stocks_stream: could not %s silver object \"%s\": %s", what, key, err)));
	ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
					errmsg("stocks_stream: could not %s a silver object: %s", what, err)));
}

SilverRow *
ss_silver_object_row(SilverTable t)
{
	SilverRow *row = palloc0(sizeof(SilverRow));

	row->table = t;
	row->cols = columns_of(t, &row->ncols);
	return row;
}

static void
list_cell(SilverRow *row, SsPqCell *cell, Datum d)
{
	ArrayType *arr = DatumGetArrayTypeP(d);
	Datum *elems;
	bool *nulls;
	int n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > row->items_cap)
	{
		int cap = Max(n, 8);

		row->items = row->items == NULL
						 ? MemoryContextAlloc(GetMemoryChunkContext(row), cap * sizeof(SsPqStr))
						 : repalloc(row->items, cap * sizeof(SsPqStr));
		row->items_cap = cap;
	}
	for (int i = 0; i < n; i++)
	{
		row->items[i].is_null = nulls[i];
		row->items[i].ptr = NULL;
		row->items[i].len = 0;
		if (!nulls[i])
		{
			text *s = DatumGetTextPP(elems[i]);

			row->items[i].ptr = (const uint8_t *) VARDATA_ANY(s);
			row->items[i].len = VARSIZE_ANY_EXHDR(s);
		}
	}
	cell->items = row->items;
	cell->nitems = n;
}

/*
 * The cells of a silver tuple (of a desc ss_silver_object_check_desc
 * passed).  Strings point into the tuple or into values detoasted in the
 * current memory context: valid while both are.
 */
void
ss_silver_object_row_from_tuple(SilverRow *row, TupleDesc desc, HeapTuple tuple)
{
	Datum values[MAX_COLUMNS];
	bool nulls[MAX_COLUMNS];

	heap_deform_tuple(tuple, desc, values, nulls);
	for (int i = 0; i < row->ncols; i++)
	{
		SsPqCell *cell = &row->cells[i];
		bool isnull = nulls[i];
		Datum d = values[i];

		memset(cell, 0, sizeof(SsPqCell));
		cell->is_null = isnull;
		if (isnull)
			continue;
		switch (row->cols[i].type)
		{
			case TEXTOID:
			{
				text *s = DatumGetTextPP(d);

				cell->ptr = (const uint8_t *) VARDATA_ANY(s);
				cell->len = VARSIZE_ANY_EXHDR(s);
				break;
			}
			case TIMESTAMPTZOID:
				cell->i64 = DatumGetTimestampTz(d) + UNIX_TO_PG_USECS;
				break;
			case FLOAT8OID:
				cell->f64 = DatumGetFloat8(d);
				break;
			case INT4OID:
				cell->i64 = DatumGetInt32(d);
				break;
			case INT8OID:
				cell->i64 = DatumGetInt64(d);
				break;
			default:
				list_cell(row, cell, d);
				break;
		}
	}
}

const char *
ss_silver_object_row_symbol(const SilverRow *row, size_t *len)
{
	*len = row->cells[0].len;
	return (const char *) row->cells[0].ptr;
}

/* Bytes of a cell's canonical encoding after its null flag. */
static size_t
cell_size(const SilverColumn *col, const SsPqCell *cell)
{
	size_t n;

	if (cell->is_null)
		return 0;
	switch (col->type)
	{
		case TEXTOID:
			return sizeof(uint32) + cell->len;
		case FLOAT8OID:
		case TIMESTAMPTZOID:
		case INT4OID:
		case INT8OID:
			return sizeof(int64);
		default:
			n = sizeof(uint32);
			for (size_t k = 0; k < cell->nitems; k++)
				n += 1 + (cell->items[k].is_null ? 0 : sizeof(uint32) + cell->items[k].len);
			return n;
	}
}

static char *
put_bytes(char *p, const uint8_t *s, size_t len)
{
	uint32 n = (uint32) len;

	memcpy(p, &n, sizeof(n));
	p += sizeof(n);
	if (len > 0)
		memcpy(p, s, len);
	return p + len;
}

static char *
put_cell(char *p, const SilverColumn *col, const SsPqCell *cell)
{
	*p++ = cell->is_null ? 0 : 1;
	if (cell->is_null)
		return p;
	switch (col->type)
	{
		case TEXTOID:
			return put_bytes(p, cell->ptr, cell->len);
		case FLOAT8OID:
			memcpy(p, &cell->f64, sizeof(double));
			return p + sizeof(double);
		case TIMESTAMPTZOID:
		case INT4OID:
		case INT8OID:
			memcpy(p, &cell->i64, sizeof(int64));
			return p + sizeof(int64);
		default:
		{
			uint32 n = (uint32) cell->nitems;

			memcpy(p, &n, sizeof(n));
			p += sizeof(n);
			for (size_t k = 0; k < cell->nitems; k++)
			{
				*p++ = cell->items[k].is_null ? 0 : 1;
				if (!cell->items[k].is_null)
					p = put_bytes(p, cell->items[k].ptr, cell->items[k].len);
			}
			return p;
		}
	}
}

/*
 * The row's checksum: a 64-bit hash of its cells' canonical encoding,
 * written into one buffer (kept for the next rows) sized for the row first.
 */
uint64
ss_silver_object_row_hash(const SilverRow *row)
{
	static char *buf = NULL;
	static size_t cap = 0;
	char *p;
	size_t size = 0;

	for (int i = 0; i < row->ncols; i++)
		size += 1 + cell_size(&row->cols[i], &row->cells[i]);
	if (size > cap)
	{
		size_t want = Max(size, 1024);

		buf = buf == NULL ? MemoryContextAlloc(TopMemoryContext, want) : repalloc(buf, want);
		cap = want;
	}
	p = buf;
	for (int i = 0; i < row->ncols; i++)
		p = put_cell(p, &row->cols[i], &row->cells[i]);
	Assert((size_t) (p - buf) == size);
	return DatumGetUInt64(
		hash_bytes_extended((const unsigned char *) buf, size, UINT64CONST(0x73746f636b73)));
}

static void
free_writer(void *arg)
{
	SilverWriter *w = arg;

	if (w->data != NULL)
		ss_pq_buffer_free(w->data, w->len);
	w->data = NULL;
	ss_pq_silver_writer_free(w->w);
	w->w = NULL;
}

/* A writer of one object, freed with the current memory context. */
SilverWriter *
ss_silver_object_writer(SilverTable t, int group_rows)
{
	char err[ERRLEN] = "";
	SilverWriter *w = palloc0(sizeof(SilverWriter));

	w->w = ss_pq_silver_writer_new((int32_t) t, (size_t) group_rows, err, sizeof(err));
	if (w->w == NULL)
		library_error("start", NULL, err);
	w->free_cb.func = free_writer;
	w->free_cb.arg = w;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &w->free_cb);
	return w;
}

void
ss_silver_object_add(SilverWriter *w, const SilverRow *row)
{
	char err[ERRLEN] = "";

	if (ss_pq_silver_writer_add(w->w, row->cells, row->ncols, err, sizeof(err)) != 0)
		library_error("add a row to", NULL, err);
}

int64
ss_silver_object_bytes(const SilverWriter *w)
{
	return ss_pq_silver_writer_bytes(w->w);
}

/* The object; the library's buffer (no copy), valid until the writer is freed. */
const char *
ss_silver_object_finish(SilverWriter *w, size_t *len)
{
	char err[ERRLEN] = "";

	if (ss_pq_silver_writer_finish(w->w, &w->data, &w->len, err, sizeof(err)) != 0)
		library_error("encode", NULL, err);
	*len = w->len;
	return (const char *) w->data;
}

/* Free the writer and its object now (its memory context would, later). */
void
ss_silver_object_free_writer(SilverWriter *w)
{
	free_writer(w);
}

static void
free_reader(void *arg)
{
	SilverReader *r = arg;

	ss_pq_silver_reader_free(r->r);
	r->r = NULL;
}

/* A reader over an object (the library copies it), freed with the current memory context. */
SilverReader *
ss_silver_object_open(SilverTable t, const char *data, size_t len, const char *key)
{
	char err[ERRLEN] = "";
	SilverReader *r = palloc0(sizeof(SilverReader));

	r->r = ss_pq_silver_reader_open((int32_t) t, (const uint8_t *) data, len,
									ss_settings_max_object_bytes(), err, sizeof(err));
	if (r->r == NULL)
		library_error("read", key, err);
	r->key = pstrdup(key);
	r->free_cb.func = free_reader;
	r->free_cb.arg = r;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &r->free_cb);
	return r;
}

int64
ss_silver_object_rows(const SilverReader *r)
{
	return ss_pq_silver_reader_rows(r->r);
}

/* The next row's cells into row (valid until the next call); false at the end. */
bool
ss_silver_object_next(SilverReader *r, SilverRow *row)
{
	char err[ERRLEN] = "";
	int32 rc = ss_pq_silver_reader_next(r->r, row->cells, row->ncols, err, sizeof(err));

	if (rc < 0)
		library_error("read", r->key, err);
	return rc > 0;
}

#else /* !SS_HAVE_PARQUET */

struct SilverRow
{
	SilverTable table;
};

static void
unsupported(void)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					errmsg("stocks_stream: this build has no Parquet support"),
					errhint("Build the extension with PARQUET_FFI_PREFIX (scripts/stack install "
							"does).")));
}

SilverRow *
ss_silver_object_row(SilverTable t)
{
	unsupported();
	return NULL;
}

void
ss_silver_object_row_from_tuple(SilverRow *row, TupleDesc desc, HeapTuple tuple)
{
	unsupported();
}

const char *
ss_silver_object_row_symbol(const SilverRow *row, size_t *len)
{
	unsupported();
	return NULL;
}

uint64
ss_silver_object_row_hash(const SilverRow *row)
{
	unsupported();
	return 0;
}

SilverWriter *
ss_silver_object_writer(SilverTable t, int group_rows)
{
	unsupported();
	return NULL;
}

void
ss_silver_object_add(SilverWriter *w, const SilverRow *row)
{
	unsupported();
}

int64
ss_silver_object_bytes(const SilverWriter *w)
{
	unsupported();
	return -1;
}

const char *
ss_silver_object_finish(SilverWriter *w, size_t *len)
{
	unsupported();
	return NULL;
}

void
ss_silver_object_free_writer(SilverWriter *w)
{
}

SilverReader *
ss_silver_object_open(SilverTable t, const char *data, size_t len, const char *key)
{
	unsupported();
	return NULL;
}

int64
ss_silver_object_rows(const SilverReader *r)
{
	unsupported();
	return -1;
}

bool
ss_silver_object_next(SilverReader *r, SilverRow *row)
{
	unsupported();
	return false;
}

#endif
