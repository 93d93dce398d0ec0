/*
 * harness.c
 *	  Stands in for the PostgreSQL backend so the real parsers of src/ run
 *	  under libFuzzer: memory contexts over malloc, ereport/elog that
 *	  longjmp to the fuzz entry point, StringInfo, and the few other
 *	  backend functions the parsers call.
 *
 * Everything here is meant to be small and obviously right; the code being
 * fuzzed is the real src/ files, compiled as the extension compiles it.  What
 * is provided behaves as the backend's does where a parser can tell:
 *
 * - palloc and friends allocate each chunk with its own malloc (so
 *	 AddressSanitizer sees every chunk's bounds), preceded by its context as
 *	 GetMemoryChunkContext expects; a request over MaxAllocSize is an ERROR,
 *	 as in mcxt.c.  Resetting a context frees its chunks and deletes its
 *	 children.
 * - ereport(ERROR) and elog(ERROR) longjmp through PG_exception_stack, so
 *	 PG_TRY/PG_CATCH in the code work as in a backend, and an ERROR that
 *	 reaches the entry point is a clean rejection of the input.  FATAL and
 *	 PANIC abort (a crash: a parser of outside bytes must never end the
 *	 process).  Messages of every level are formatted, so their arguments
 *	 are checked too.
 * - StringInfo follows common/stringinfo.c, with its backend error paths.
 *
 * psprintf/pvsnprintf, the UTF-8 verifier (wchar.c) and PostgreSQL's
 * snprintf come from Debian's libpgcommon_shlib.a and libpgport_shlib.a.
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "nodes/memnodes.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "harness.h"

/* ---------- memory contexts ---------- */

/*
 * A chunk's header.  The context pointer is last, right before the chunk,
 * where GetMemoryChunkContext (utils/memutils.h) reads it; 32 bytes keep
 * chunks MAXALIGNed.
 */
typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	Size size;
	MemoryContext context;
} Chunk;

typedef struct FuzzContext
{
	MemoryContextData header; /* first: a MemoryContext points here */
	Chunk *chunks;			  /* doubly linked list of live chunks */
} FuzzContext;

StaticAssertDecl(sizeof(Chunk) % MAXIMUM_ALIGNOF == 0, "chunk header must keep alignment");

MemoryContext TopMemoryContext = NULL;
MemoryContext CurrentMemoryContext = NULL;
MemoryContext ErrorContext = NULL;

static MemoryContext input_context = NULL; /* reset after every input */

static MemoryContext
context_create(MemoryContext parent, const char *name)
{
	FuzzContext *c = calloc(1, sizeof(FuzzContext));

	if (c == NULL)
		abort();
	c->header.type = T_AllocSetContext;
	c->header.isReset = true;
	c->header.name = name;
	c->header.parent = parent;
	if (parent != NULL)
	{
		c->header.nextchild = parent->firstchild;
		if (parent->firstchild != NULL)
			parent->firstchild->prevchild = &c->header;
		parent->firstchild = &c->header;
	}
	return &c->header;
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name, Size minContextSize,
							  Size initBlockSize, Size maxBlockSize)
{
	return context_create(parent, name);
}

static void *
chunk_alloc(MemoryContext context, Size size, int flags)
{
	FuzzContext *c = (FuzzContext *) context;
	Chunk *chunk;

	if ((flags & MCXT_ALLOC_HUGE) ? !AllocHugeSizeIsValid(size) : !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	chunk =
		(flags & MCXT_ALLOC_ZERO) ? calloc(1, sizeof(Chunk) + size) : malloc(sizeof(Chunk) + size);
	if (chunk == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
						errdetail("Failed on request of size %zu.", size)));
	}
	chunk->size = size;
	chunk->context = context;
	chunk->prev = NULL;
	chunk->next = c->chunks;
	if (c->chunks != NULL)
		c->chunks->prev = chunk;
	c->chunks = chunk;
	context->isReset = false;
	return chunk + 1;
}

static Chunk *
chunk_of(void *pointer)
{
	return ((Chunk *) pointer) - 1;
}

static void
chunk_free(Chunk *chunk)
{
	FuzzContext *c = (FuzzContext *) chunk->context;

	if (chunk->prev != NULL)
		chunk->prev->next = chunk->next;
	else
		c->chunks = chunk->next;
	if (chunk->next != NULL)
		chunk->next->prev = chunk->prev;
	free(chunk);
}

void
MemoryContextDelete(MemoryContext context)
{
	MemoryContextReset(context);
	if (context->parent != NULL)
	{
		if (context->prevchild != NULL)
			context->prevchild->nextchild = context->nextchild;
		else
			context->parent->firstchild = context->nextchild;
		if (context->nextchild != NULL)
			context->nextchild->prevchild = context->prevchild;
	}
	if (CurrentMemoryContext == context)
		CurrentMemoryContext = context->parent;
	free(context);
}

/* As mcxt.c: callbacks run, newest first, before a context's memory goes. */
void
MemoryContextRegisterResetCallback(MemoryContext context, MemoryContextCallback *cb)
{
	cb->next = context->reset_cbs;
	context->reset_cbs = cb;
	context->isReset = false;
}

static void
call_reset_callbacks(MemoryContext context)
{
	MemoryContextCallback *cb;

	while ((cb = context->reset_cbs) != NULL)
	{
		context->reset_cbs = cb->next;
		cb->func(cb->arg);
	}
}

void
MemoryContextReset(MemoryContext context)
{
	FuzzContext *c = (FuzzContext *) context;

	call_reset_callbacks(context);
	while (context->firstchild != NULL)
		MemoryContextDelete(context->firstchild);
	while (c->chunks != NULL)
		chunk_free(c->chunks);
	context->isReset = true;
}

void
MemoryContextResetOnly(MemoryContext context)
{
	FuzzContext *c = (FuzzContext *) context;

	call_reset_callbacks(context);
	while (c->chunks != NULL)
		chunk_free(c->chunks);
	context->isReset = true;
}

void
MemoryContextDeleteChildren(MemoryContext context)
{
	while (context->firstchild != NULL)
		MemoryContextDelete(context->firstchild);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return chunk_alloc(context, size, flags);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return MemoryContextAllocExtended(context, size, MCXT_ALLOC_HUGE);
}

void *
palloc(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, 0);
}

void *
palloc0(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	chunk_free(chunk_of(pointer));
}

void *
repalloc(void *pointer, Size size)
{
	Chunk *old = chunk_of(pointer);
	void *moved = chunk_alloc(old->context, size, 0);

	memcpy(moved, pointer, Min(old->size, size));
	chunk_free(old);
	return moved;
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size len = strlen(string) + 1;
	char *copy = MemoryContextAlloc(context, len);

	memcpy(copy, string, len);
	return copy;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

/* ---------- errors ---------- */

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

static int error_level;
static char error_message[1024];
static bool verbose = false;

bool
errstart(int elevel, const char *domain)
{
	error_level = elevel;
	error_message[0] = '\0';
	return true; /* every level is formatted, its arguments evaluated */
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	if (verbose)
		fprintf(stderr, "fuzz harness: %s level %d at %s:%d: %s\n",
				error_level >= ERROR ? "ERROR" : "message", error_level, filename, lineno,
				error_message);
	if (error_level >= FATAL)
	{
		fprintf(stderr, "fuzz harness: FATAL or PANIC at %s:%d: %s\n", filename, lineno,
				error_message);
		abort();
	}
	if (error_level >= ERROR)
		pg_re_throw();
}

void
pg_re_throw(void)
{
	if (PG_exception_stack == NULL)
	{
		fprintf(stderr, "fuzz harness: ERROR outside PG_TRY: %s\n", error_message);
		abort();
	}
	siglongjmp(*PG_exception_stack, 1);
}

void
FlushErrorState(void)
{
	error_level = 0;
}

const char *
fuzz_last_error(void)
{
	return error_message;
}

static void
put_message(const char *fmt, va_list args)
{
	char text[sizeof(error_message)];

	vsnprintf(text, sizeof(text), fmt, args);
	/* the primary message is kept; detail and hint only when it is empty */
	if (error_message[0] == '\0')
		strlcpy(error_message, text, sizeof(error_message));
}

#define PUT_MESSAGE(fmt)                                                                           \
	do                                                                                             \
	{                                                                                              \
		va_list args;                                                                              \
                                                                                                   \
		va_start(args, fmt);                                                                       \
		put_message(fmt, args);                                                                    \
		va_end(args);                                                                              \
	} while (0)

int
errmsg(const char *fmt, ...)
{
	PUT_MESSAGE(fmt);
	return 0;
}

int
errmsg_internal(const char *fmt, ...)
{
	PUT_MESSAGE(fmt);
	return 0;
}

int
errdetail(const char *fmt, ...)
{
	PUT_MESSAGE(fmt);
	return 0;
}

int
errdetail_internal(const char *fmt, ...)
{
	PUT_MESSAGE(fmt);
	return 0;
}

int
errhint(const char *fmt, ...)
{
	PUT_MESSAGE(fmt);
	return 0;
}

int
errcode(int sqlerrcode)
{
	return 0;
}

int
errcode_for_file_access(void)
{
	return 0;
}

/* ---------- StringInfo (as common/stringinfo.c in a backend) ---------- */

StringInfo
makeStringInfo(void)
{
	StringInfo res = palloc(sizeof(StringInfoData));

	initStringInfo(res);
	return res;
}

void
initStringInfo(StringInfo str)
{
	int size = 1024;

	str->data = palloc(size);
	str->maxlen = size;
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int newlen;

	if (needed < 0)
		elog(ERROR, "invalid string enlargement request size: %d", needed);
	if (((Size) needed) >= (MaxAllocSize - (Size) str->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("out of memory"),
				 errdetail("Cannot enlarge string buffer containing %d bytes by %d more bytes.",
						   str->len, needed)));
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

int
appendStringInfoVA(StringInfo str, const char *fmt, va_list args)
{
	int avail = str->maxlen - str->len;
	size_t nprinted;

	Assert(str != NULL);
	nprinted = pvsnprintf(str->data + str->len, (size_t) avail, fmt, args);
	if (nprinted < (size_t) avail)
	{
		str->len += (int) nprinted;
		return 0;
	}
	str->data[str->len] = '\0';
	return (int) nprinted;
}

void
appendStringInfo(StringInfo str, const char *fmt, ...)
{
	int save_errno = errno;

	for (;;)
	{
		va_list args;
		int needed;

		errno = save_errno;
		va_start(args, fmt);
		needed = appendStringInfoVA(str, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(str, needed);
	}
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendBinaryStringInfoNT(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

void
appendStringInfoSpaces(StringInfo str, int count)
{
	if (count > 0)
	{
		enlargeStringInfo(str, count);
		while (--count >= 0)
			str->data[str->len++] = ' ';
		str->data[str->len] = '\0';
	}
}

/* ---------- the rest ---------- */

/* libpq/pqformat.c */
void
pq_sendfloat8(StringInfo buf, float8 f)
{
	union
	{
		float8 f;
		int64 i;
	} swap;

	swap.f = f;
	pq_sendint64(buf, swap.i);
}

/* utils/mb/mbutils.c, for noError = true (an invalid string is reported, not raised) */
bool
pg_verify_mbstr(int encoding, const char *mbstr, int len, bool noError)
{
	int oklen = pg_encoding_verifymbstr(encoding, mbstr, len);

	if (oklen != len && !noError)
		ereport(ERROR, (errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
						errmsg("invalid byte sequence for encoding \"%s\"",
							   encoding == PG_UTF8 ? "UTF8" : "?")));
	return oklen == len;
}

/* nodes/list.c: lappend onto an array-based List */
List *
lappend(List *list, void *datum)
{
	if (list == NIL)
	{
		list = palloc(offsetof(List, initial_elements) + 4 * sizeof(ListCell));
		list->type = T_List;
		list->length = 0;
		list->max_length = 4;
		list->elements = list->initial_elements;
	}
	else if (list->length == list->max_length)
	{
		ListCell *elements = palloc(2 * list->max_length * sizeof(ListCell));

		memcpy(elements, list->elements, list->length * sizeof(ListCell));
		list->elements = elements;
		list->max_length *= 2;
	}
	list->elements[list->length++].ptr_value = datum;
	return list;
}

/* ---------- the libFuzzer entry points ---------- */

char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = palloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("FUZZ_VERBOSE");

	verbose = v != NULL && v[0] != '\0' && v[0] != '0';
	TopMemoryContext = context_create(NULL, "TopMemoryContext");
	ErrorContext = context_create(TopMemoryContext, "ErrorContext");
	input_context = context_create(TopMemoryContext, "fuzz input");
	CurrentMemoryContext = input_context;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CurrentMemoryContext = input_context;
	PG_TRY();
	{
		fuzz_target(data, size);
	}
	PG_CATCH();
	{
		/* an ERROR: the input was refused, cleanly */
		FlushErrorState();
	}
	PG_END_TRY();
	CurrentMemoryContext = input_context;
	MemoryContextReset(input_context);
	return 0;
}
