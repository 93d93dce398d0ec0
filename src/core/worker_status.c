/*
 * worker_status.c
 *	  Owns the shared-memory array of worker status slots and the SQL
 *	  function stocks_stream.worker_status_internal() that reads it.
 *
 * Each archive or ingest worker claims one slot at start and releases it
 * at exit.  A slot holds a state, a detail text (assigned partitions,
 * symbols), a few kind-specific counters, the time of the last activity
 * (flush or message) and the last error.  The counters are named here,
 * once: stocks_stream.worker_status_internal() returns them as columns of
 * those names, which the views select.  A single spinlock guards the array: every critical section
 *is a few stores or a memcpy, and nothing inside can raise an error.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "core/settings.h"
#include "core/worker_status.h"

#define STATE_LEN  32
#define DETAIL_LEN 256
#define ERROR_LEN  512

struct WorkerStatus
{
	bool in_use;
	WorkerKind kind;
	int pid;
	int owner_id;
	char owner_name[NAMEDATALEN];
	int worker_no;
	uint64 launcher_generation; /* of the launcher that started the worker */
	char state[STATE_LEN];
	char detail[DETAIL_LEN];
	int64 counters[STATUS_COUNTERS];
	TimestampTz started_at;
	TimestampTz last_activity;
	char last_error[ERROR_LEN];
	TimestampTz last_error_at;
};

typedef struct StatusArray
{
	slock_t mutex;
	uint64 launcher_generation; /* bumped by each launcher at its start */
	bool launcher_running;
	int nslots;
	WorkerStatus slots[FLEXIBLE_ARRAY_MEMBER];
} StatusArray;

static StatusArray *status_array = NULL;

/* archive workers plus one slot per ingest source */
static int
status_slots(void)
{
	return ss_settings_max_workers * 2;
}

static Size
status_array_size(void)
{
	return add_size(offsetof(StatusArray, slots), mul_size(status_slots(), sizeof(WorkerStatus)));
}

void
ss_worker_status_shmem_request(void)
{
	RequestAddinShmemSpace(status_array_size());
}

void
ss_worker_status_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	status_array = ShmemInitStruct("stocks_stream worker status", status_array_size(), &found);
	if (!found)
	{
		memset(status_array, 0, status_array_size());
		SpinLockInit(&status_array->mutex);
		status_array->nslots = status_slots();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * A launcher starts: from now on only the workers it starts may run.
 * Returns its generation, which it hands to its workers.
 */
uint64
ss_worker_status_launcher_started(void)
{
	uint64 generation;

	SpinLockAcquire(&status_array->mutex);
	generation = ++status_array->launcher_generation;
	status_array->launcher_running = true;
	SpinLockRelease(&status_array->mutex);
	return generation;
}

/* The launcher of this generation exits: its workers follow it. */
void
ss_worker_status_launcher_exited(uint64 generation)
{
	SpinLockAcquire(&status_array->mutex);
	if (status_array->launcher_generation == generation)
		status_array->launcher_running = false;
	SpinLockRelease(&status_array->mutex);
}

/* Is the launcher of this generation still the one running? */
bool
ss_worker_status_launcher_is_current(uint64 generation)
{
	bool current;

	SpinLockAcquire(&status_array->mutex);
	current = status_array->launcher_running && status_array->launcher_generation == generation;
	SpinLockRelease(&status_array->mutex);
	return current;
}

/*
 * Pids of the workers that a launcher other than `generation` started and
 * that still hold their slot; at most `max`.  Returns how many there are.
 */
int
ss_worker_status_orphans(uint64 generation, int *pids, int max)
{
	int n = 0;

	SpinLockAcquire(&status_array->mutex);
	for (int i = 0; i < status_array->nslots; i++)
	{
		WorkerStatus *s = &status_array->slots[i];

		if (s->in_use && s->launcher_generation != generation)
		{
			if (n < max)
				pids[n] = s->pid;
			n++;
		}
	}
	SpinLockRelease(&status_array->mutex);
	return n;
}

/*
 * Claim a status slot for this worker.  Returns NULL, claiming nothing,
 * when the launcher that started it is no longer the current one, or when
 * another worker holds the same pipeline slot or source: never two
 * workers for one.
 */
WorkerStatus *
ss_worker_status_claim(WorkerKind kind, int owner_id, const char *owner_name, int worker_no,
					   uint64 launcher_generation)
{
	WorkerStatus *slot = NULL;
	bool current;

	SpinLockAcquire(&status_array->mutex);
	current =
		status_array->launcher_running && status_array->launcher_generation == launcher_generation;
	for (int i = 0; current && i < status_array->nslots; i++)
	{
		WorkerStatus *s = &status_array->slots[i];

		/* another worker already runs this pipeline slot or source */
		if (s->in_use && s->kind == kind && s->owner_id == owner_id && s->worker_no == worker_no)
		{
			current = false;
			slot = NULL;
		}
		else if (!s->in_use && slot == NULL)
			slot = s;
	}
	if (slot != NULL)
	{
		memset(slot, 0, sizeof(WorkerStatus));
		slot->in_use = true;
		slot->kind = kind;
		slot->pid = MyProcPid;
		slot->owner_id = owner_id;
		strlcpy(slot->owner_name, owner_name, NAMEDATALEN);
		slot->worker_no = worker_no;
		slot->launcher_generation = launcher_generation;
		strlcpy(slot->state, "starting", STATE_LEN);
		slot->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&status_array->mutex);

	if (!current)
		return NULL;
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("stocks_stream: no free worker status slot"),
				 errhint("Raise stocks_stream.max_workers (currently %d) and restart the server.",
						 ss_settings_max_workers)));
	return slot;
}

void
ss_worker_status_release(WorkerStatus *slot)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&status_array->mutex);
	if (slot->pid == MyProcPid)
		slot->in_use = false;
	SpinLockRelease(&status_array->mutex);
}

void
ss_worker_status_set_state(WorkerStatus *slot, const char *state)
{
	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->state, state, STATE_LEN);
	SpinLockRelease(&status_array->mutex);
}

void
ss_worker_status_set_detail(WorkerStatus *slot, const char *detail)
{
	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->detail, detail, DETAIL_LEN);
	SpinLockRelease(&status_array->mutex);
}

void
ss_worker_status_add(WorkerStatus *slot, int counter, int64 delta)
{
	SpinLockAcquire(&status_array->mutex);
	slot->counters[counter] += delta;
	SpinLockRelease(&status_array->mutex);
}

void
ss_worker_status_set_counter(WorkerStatus *slot, int counter, int64 value)
{
	SpinLockAcquire(&status_array->mutex);
	slot->counters[counter] = value;
	SpinLockRelease(&status_array->mutex);
}

/*
 * Add a batch of counter deltas and mark activity now (a flush, or
 * messages delivered).
 */
void
ss_worker_status_add_activity(WorkerStatus *slot, const int64 *deltas)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&status_array->mutex);
	for (int i = 0; i < STATUS_COUNTERS; i++)
		slot->counters[i] += deltas[i];
	slot->last_activity = now;
	SpinLockRelease(&status_array->mutex);
}

void
ss_worker_status_set_error(WorkerStatus *slot, const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->last_error, message, ERROR_LEN);
	slot->last_error_at = now;
	SpinLockRelease(&status_array->mutex);
}

/*
 * The columns of stocks_stream.worker_status_internal(kind): each field of
 * a slot and each counter named once, here.  The SQL function declares the
 * columns it wants by these names (in any order); a name this table does
 * not know is an error, and a counter of the other kind is NULL.
 */
typedef enum StatusField
{
	SF_OWNER,
	SF_OWNER_ID,
	SF_WORKER,
	SF_PID,
	SF_STATE,
	SF_DETAIL,
	SF_STARTED_AT,
	SF_LAST_ACTIVITY,
	SF_LAST_ERROR,
	SF_LAST_ERROR_AT,
	SF_COUNTER
} StatusField;

typedef struct StatusColumn
{
	const char *name;
	StatusField field;
	Oid type;
	WorkerKind kind; /* SF_COUNTER: whose counter */
	int counter;
} StatusColumn;

static const StatusColumn status_columns[] = {
	{"owner", SF_OWNER, TEXTOID, 0, 0},
	{"owner_id", SF_OWNER_ID, INT4OID, 0, 0},
	{"worker", SF_WORKER, INT4OID, 0, 0},
	{"pid", SF_PID, INT4OID, 0, 0},
	{"state", SF_STATE, TEXTOID, 0, 0},
	{"detail", SF_DETAIL, TEXTOID, 0, 0},
	{"started_at", SF_STARTED_AT, TIMESTAMPTZOID, 0, 0},
	{"last_activity", SF_LAST_ACTIVITY, TIMESTAMPTZOID, 0, 0},
	{"last_error", SF_LAST_ERROR, TEXTOID, 0, 0},
	{"last_error_at", SF_LAST_ERROR_AT, TIMESTAMPTZOID, 0, 0},
	{"messages_archived", SF_COUNTER, INT8OID, WORKER_ARCHIVE, ARCHIVE_MESSAGES},
	{"bytes_archived", SF_COUNTER, INT8OID, WORKER_ARCHIVE, ARCHIVE_BYTES},
	{"objects_written", SF_COUNTER, INT8OID, WORKER_ARCHIVE, ARCHIVE_OBJECTS},
	{"lag", SF_COUNTER, INT8OID, WORKER_ARCHIVE, ARCHIVE_LAG},
	{"messages_produced", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_PRODUCED},
	{"delivery_failures", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_DELIVERY_FAILURES},
	{"api_calls", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_API_CALLS},
	{"rate_limited_429", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_HTTP_429},
	{"zero_quotes_skipped", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_ZERO_QUOTES},
	{"unchanged_quotes_skipped", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_UNCHANGED_QUOTES},
	{"reconnects", SF_COUNTER, INT8OID, WORKER_INGEST, INGEST_RECONNECTS},
};

StaticAssertDecl(ARCHIVE_COUNTERS <= STATUS_COUNTERS && INGEST_COUNTERS <= STATUS_COUNTERS,
				 "a status slot holds every counter");

/* 'archive' or 'ingest' */
static WorkerKind
kind_from_text(text *kind_text)
{
	char *kind_name = text_to_cstring(kind_text);

	if (strcmp(kind_name, "archive") == 0)
		return WORKER_ARCHIVE;
	if (strcmp(kind_name, "ingest") == 0)
		return WORKER_INGEST;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("stocks_stream: unknown worker kind \"%s\"", kind_name),
					errhint("Use 'archive' or 'ingest'.")));
	pg_unreachable();
}

/* A copy of the live slots of one kind, taken under the lock; *n of them. */
static WorkerStatus *
copy_slots(WorkerKind kind, int *n)
{
	WorkerStatus *copy;
	int nslots;

	if (status_array == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("stocks_stream must be loaded via shared_preload_libraries")));
	nslots = status_array->nslots;
	copy = palloc(sizeof(WorkerStatus) * nslots);
	SpinLockAcquire(&status_array->mutex);
	memcpy(copy, status_array->slots, sizeof(WorkerStatus) * nslots);
	SpinLockRelease(&status_array->mutex);

	*n = 0;
	for (int i = 0; i < nslots; i++)
		if (copy[i].in_use && copy[i].kind == kind)
			copy[(*n)++] = copy[i];
	return copy;
}

/* The status_columns entry of each column of the result, by its name. */
static const StatusColumn **
resolve_columns(TupleDesc desc)
{
	const StatusColumn **cols = palloc(sizeof(StatusColumn *) * desc->natts);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		cols[i] = NULL;
		for (int j = 0; j < (int) lengthof(status_columns) && cols[i] == NULL; j++)
			if (strcmp(NameStr(att->attname), status_columns[j].name) == 0)
				cols[i] = &status_columns[j];
		if (cols[i] == NULL || cols[i]->type != att->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("stocks_stream worker status has no column \"%s\" of type %s",
							NameStr(att->attname), format_type_be(att->atttypid)),
					 errhint("The extension's SQL and its library differ: run ALTER EXTENSION "
							 "stocks_stream UPDATE.")));
	}
	return cols;
}

static Datum
timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

/* The value of one field (not a counter) of a slot. */
static Datum
field_value(const WorkerStatus *s, StatusField field, bool *isnull)
{
	*isnull = false;
	switch (field)
	{
		case SF_OWNER:
			return CStringGetTextDatum(s->owner_name);
		case SF_OWNER_ID:
			return Int32GetDatum(s->owner_id);
		case SF_WORKER:
			return Int32GetDatum(s->worker_no);
		case SF_PID:
			return Int32GetDatum(s->pid);
		case SF_STATE:
			return CStringGetTextDatum(s->state);
		case SF_DETAIL:
			return CStringGetTextDatum(s->detail);
		case SF_STARTED_AT:
			return timestamp_or_null(s->started_at, isnull);
		case SF_LAST_ACTIVITY:
			return timestamp_or_null(s->last_activity, isnull);
		case SF_LAST_ERROR:
			*isnull = (s->last_error[0] == '\0');
			return CStringGetTextDatum(s->last_error);
		case SF_LAST_ERROR_AT:
			return timestamp_or_null(s->last_error_at, isnull);
		case SF_COUNTER:
			break;
	}
	elog(ERROR, "stocks_stream: unexpected worker status field %d", (int) field);
	pg_unreachable();
}

/* The value of one column for a slot: a counter of its kind, or NULL. */
static Datum
column_value(const WorkerStatus *s, const StatusColumn *col, bool *isnull)
{
	if (col->field != SF_COUNTER)
		return field_value(s, col->field, isnull);
	*isnull = (col->kind != s->kind);
	return Int64GetDatum(s->counters[col->counter]);
}

PG_FUNCTION_INFO_V1(ss_worker_status_v2);

/*
 * worker_status_internal(kind) of 0.2.0: one row per live slot of that
 * kind ('archive' or 'ingest'), in the columns its SQL declaration names.
 */
Datum
ss_worker_status_v2(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerKind kind = kind_from_text(PG_GETARG_TEXT_PP(0));
	const StatusColumn **cols;
	WorkerStatus *slots;
	Datum *values;
	bool *nulls;
	int n;

	InitMaterializedSRF(fcinfo, 0);
	cols = resolve_columns(rsinfo->setDesc);
	values = palloc(sizeof(Datum) * rsinfo->setDesc->natts);
	nulls = palloc(sizeof(bool) * rsinfo->setDesc->natts);
	slots = copy_slots(kind, &n);
	for (int i = 0; i < n; i++)
	{
		for (int c = 0; c < rsinfo->setDesc->natts; c++)
			values[c] = column_value(&slots[i], cols[c], &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

static Datum
counters_array(const int64 *counters)
{
	Datum elems[STATUS_COUNTERS];

	for (int i = 0; i < STATUS_COUNTERS; i++)
		elems[i] = Int64GetDatum(counters[i]);
	return PointerGetDatum(
		construct_array(elems, STATUS_COUNTERS, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(ss_worker_status);

/*
 * worker_status_internal(kind) of 0.1.0, its counters a bigint[] in the
 * order of ArchiveCounter and IngestCounter: served while a database's
 * extension has not been updated yet.
 */
Datum
ss_worker_status(PG_FUNCTION_ARGS)
{
	static const StatusField fields[] = {
		SF_OWNER,	   SF_WORKER,		 SF_PID,		SF_STATE,		  SF_DETAIL,  SF_COUNTER,
		SF_STARTED_AT, SF_LAST_ACTIVITY, SF_LAST_ERROR, SF_LAST_ERROR_AT, SF_OWNER_ID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerStatus *slots;
	int n;

	InitMaterializedSRF(fcinfo, 0);
	slots = copy_slots(kind_from_text(PG_GETARG_TEXT_PP(0)), &n);
	for (int i = 0; i < n; i++)
	{
		Datum values[lengthof(fields)];
		bool nulls[lengthof(fields)];

		for (int c = 0; c < (int) lengthof(fields); c++)
		{
			nulls[c] = false;
			values[c] = fields[c] == SF_COUNTER ? counters_array(slots[i].counters)
												: field_value(&slots[i], fields[c], &nulls[c]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
