/*
 * worker_status.c
 *	  Owns the shared-memory array of archive worker status slots and the
 *	  SQL function stocks_stream.worker_status_internal() that reads it.
 *
 * Each worker claims one slot at start and releases it at exit.  A single
 * spinlock guards the array: every critical section is a few memcpys, and
 * nothing inside can raise an error.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "worker_status.h"

#define STATE_LEN 32
#define PARTITIONS_LEN 256
#define ERROR_LEN 512

struct WorkerStatus
{
	bool		in_use;
	int			pid;
	int			pipeline_id;
	char		pipeline[NAMEDATALEN];
	int			worker_no;
	char		state[STATE_LEN];
	char		partitions[PARTITIONS_LEN];
	uint64		messages;
	uint64		bytes;
	uint64		objects;
	TimestampTz started_at;
	TimestampTz last_flush;
	char		last_error[ERROR_LEN];
	TimestampTz last_error_at;
};

typedef struct StatusArray
{
	slock_t		mutex;
	int			nslots;
	WorkerStatus slots[FLEXIBLE_ARRAY_MEMBER];
} StatusArray;

static StatusArray *status_array = NULL;

static Size
status_array_size(void)
{
	return add_size(offsetof(StatusArray, slots),
					mul_size(ss_max_workers, sizeof(WorkerStatus)));
}

void
ss_status_shmem_request(void)
{
	RequestAddinShmemSpace(status_array_size());
}

void
ss_status_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	status_array = ShmemInitStruct("stocks_stream worker status",
								   status_array_size(), &found);
	if (!found)
	{
		memset(status_array, 0, status_array_size());
		SpinLockInit(&status_array->mutex);
		status_array->nslots = ss_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

WorkerStatus *
ss_status_claim(int pipeline_id, const char *pipeline, int worker_no)
{
	WorkerStatus *slot = NULL;

	SpinLockAcquire(&status_array->mutex);
	for (int i = 0; i < status_array->nslots; i++)
	{
		WorkerStatus *s = &status_array->slots[i];

		/* a slot left behind by a crashed worker of the same key is reused */
		if (!s->in_use || (s->pipeline_id == pipeline_id && s->worker_no == worker_no))
		{
			slot = s;
			break;
		}
	}
	if (slot != NULL)
	{
		memset(slot, 0, sizeof(WorkerStatus));
		slot->in_use = true;
		slot->pid = MyProcPid;
		slot->pipeline_id = pipeline_id;
		strlcpy(slot->pipeline, pipeline, NAMEDATALEN);
		slot->worker_no = worker_no;
		strlcpy(slot->state, "starting", STATE_LEN);
		slot->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&status_array->mutex);

	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no free stocks_stream worker slot"),
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
ss_status_set_partitions(WorkerStatus *slot, const char *partitions)
{
	SpinLockAcquire(&status_array->mutex);
	strlcpy(slot->partitions, partitions, PARTITIONS_LEN);
	SpinLockRelease(&status_array->mutex);
}

void
ss_status_count_flush(WorkerStatus *slot, uint64 messages, uint64 bytes)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&status_array->mutex);
	slot->messages += messages;
	slot->bytes += bytes;
	slot->objects++;
	slot->last_flush = now;
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

PG_FUNCTION_INFO_V1(ss_worker_status);

/*
 * worker_status_internal() returns one row per live worker slot.
 */
Datum
ss_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerStatus *copy;
	int			nslots;

	InitMaterializedSRF(fcinfo, 0);

	if (status_array == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stocks_stream must be loaded via shared_preload_libraries")));

	nslots = status_array->nslots;
	copy = palloc(sizeof(WorkerStatus) * nslots);
	SpinLockAcquire(&status_array->mutex);
	memcpy(copy, status_array->slots, sizeof(WorkerStatus) * nslots);
	SpinLockRelease(&status_array->mutex);

	for (int i = 0; i < nslots; i++)
	{
		WorkerStatus *s = &copy[i];
		Datum		values[13];
		bool		nulls[13] = {0};

		if (!s->in_use)
			continue;
		values[0] = CStringGetTextDatum(s->pipeline);
		values[1] = Int32GetDatum(s->worker_no);
		values[2] = Int32GetDatum(s->pid);
		values[3] = CStringGetTextDatum(s->state);
		values[4] = CStringGetTextDatum(s->partitions);
		values[5] = Int64GetDatum((int64) s->messages);
		values[6] = Int64GetDatum((int64) s->bytes);
		values[7] = Int64GetDatum((int64) s->objects);
		values[8] = timestamp_or_null(s->started_at, &nulls[8]);
		values[9] = timestamp_or_null(s->last_flush, &nulls[9]);
		values[10] = CStringGetTextDatum(s->last_error);
		nulls[10] = (s->last_error[0] == '\0');
		values[11] = timestamp_or_null(s->last_error_at, &nulls[11]);
		values[12] = Int32GetDatum(s->pipeline_id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
