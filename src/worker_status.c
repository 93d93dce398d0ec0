/*
 * worker_status.c
 *	  Owns the shared-memory array of worker status slots and the SQL
 *	  function stocks_stream.worker_status_internal() that reads it.
 *
 * Each archive or ingest worker claims one slot at start and releases it
 * at exit.  A slot holds a state, a detail text (assigned partitions,
 * symbols), a few kind-specific counters, the time of the last activity
 * (flush or message) and the last error.  The SQL views name the counters
 * per kind.  A single spinlock guards the array: every critical section is
 * a few stores or a memcpy, and nothing inside can raise an error.
 */
#include "postgres.h"

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

#include "settings.h"
#include "worker_status.h"

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
	return ss_max_workers * 2;
}

static Size
status_array_size(void)
{
	return add_size(offsetof(StatusArray, slots), mul_size(status_slots(), sizeof(WorkerStatus)));
}

void
ss_status_shmem_request(void)
{
	RequestAddinShmemSpace(status_array_size());
}

void
ss_status_shmem_startup(void)
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
ss_status_launcher_started(void)
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
ss_status_launcher_exited(uint64 generation)
{
	SpinLockAcquire(&status_array->mutex);
	if (status_array->launcher_generation == generation)
		status_array->launcher_running = false;
	SpinLockRelease(&status_array->mutex);
}

/* Is the launcher of this generation still the one running? */
bool
ss_status_launcher_is_current(uint64 generation)
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
ss_status_orphans(uint64 generation, int *pids, int max)
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
ss_status_claim(WorkerKind kind, int owner_id, const char *owner_name, int worker_no,
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
				 errmsg("no free stocks_stream worker status slot"),
				 errhint("Raise stocks_stream.max_workers (currently %d) and restart the server.",
						 ss_max_workers)));
	return slot;
}

void
ss_status_release(WorkerStatus *slot)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&status_array->mutex);
	if (slot->pid == MyProcPid)
		slot->in_use = false;
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_set_state(WorkerStatus *slot, const char *state)
{
	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->state, state, STATE_LEN);
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_set_detail(WorkerStatus *slot, const char *detail)
{
	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->detail, detail, DETAIL_LEN);
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_add(WorkerStatus *slot, int counter, int64 delta)
{
	SpinLockAcquire(&status_array->mutex);
	slot->counters[counter] += delta;
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_set_counter(WorkerStatus *slot, int counter, int64 value)
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
ss_status_add_activity(WorkerStatus *slot, const int64 *deltas)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&status_array->mutex);
	for (int i = 0; i < STATUS_COUNTERS; i++)
		slot->counters[i] += deltas[i];
	slot->last_activity = now;
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_set_error(WorkerStatus *slot, const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->last_error, message, ERROR_LEN);
	slot->last_error_at = now;
	SpinLockRelease(&status_array->mutex);
}

static Datum
timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
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
 * worker_status_internal(kind) returns one row per live slot of that kind
 * ('archive' or 'ingest').
 */
Datum
ss_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char *kind_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	WorkerKind kind;
	WorkerStatus *copy;
	int nslots;

	if (strcmp(kind_name, "archive") == 0)
		kind = WORKER_ARCHIVE;
	else if (strcmp(kind_name, "ingest") == 0)
		kind = WORKER_INGEST;
	else
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("unknown worker kind \"%s\"", kind_name),
						errhint("Use 'archive' or 'ingest'.")));

	InitMaterializedSRF(fcinfo, 0);
	if (status_array == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("stocks_stream must be loaded via shared_preload_libraries")));

	nslots = status_array->nslots;
	copy = palloc(sizeof(WorkerStatus) * nslots);
	SpinLockAcquire(&status_array->mutex);
	memcpy(copy, status_array->slots, sizeof(WorkerStatus) * nslots);
	SpinLockRelease(&status_array->mutex);

	for (int i = 0; i < nslots; i++)
	{
		WorkerStatus *s = &copy[i];
		Datum values[11];
		bool nulls[11] = {0};

		if (!s->in_use || s->kind != kind)
			continue;
		values[0] = CStringGetTextDatum(s->owner_name);
		values[1] = Int32GetDatum(s->worker_no);
		values[2] = Int32GetDatum(s->pid);
		values[3] = CStringGetTextDatum(s->state);
		values[4] = CStringGetTextDatum(s->detail);
		values[5] = counters_array(s->counters);
		values[6] = timestamp_or_null(s->started_at, &nulls[6]);
		values[7] = timestamp_or_null(s->last_activity, &nulls[7]);
		values[8] = CStringGetTextDatum(s->last_error);
		nulls[8] = (s->last_error[0] == '\0');
		values[9] = timestamp_or_null(s->last_error_at, &nulls[9]);
		values[10] = Int32GetDatum(s->owner_id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
