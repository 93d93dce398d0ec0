/*
 * launcher.c
 *	  The launcher: one static background worker that keeps one dynamic
 *	  archive worker running per (running pipeline, worker number) and one
 *	  ingest worker per running source.
 *
 * Every stocks_stream.launcher_naptime, or when a worker it started exits,
 * it reads the running pipelines and sources and reconciles: it starts
 * missing workers, terminates workers of pipelines or sources that were
 * stopped, dropped, altered (generation changed) or shrunk, and restarts workers that died, with a
 * backoff when a worker keeps dying young.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/launcher.h"
#include "core/pipeline_store.h"
#include "core/settings.h"
#include "core/worker_args.h"
#include "core/worker_loop.h"
#include "core/worker_status.h"

#define MIN_RESTART_DELAY_MS 1000
#define MAX_RESTART_DELAY_MS 30000
#define HEALTHY_RUN_MS		 30000

typedef struct ManagedWorker
{
	bool is_source;
	int owner_id;
	int worker_no;
	int generation;
	BackgroundWorkerHandle *handle; /* NULL while waiting to restart */
	TimestampTz started_at;
	TimestampTz restart_at;
	int restart_delay_ms;
	bool wanted;
} ManagedWorker;

static List *managed = NIL;
static uint64 launcher_generation = 0;

#define ORPHAN_WAIT_MS 30000

void
ss_launcher_register(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stocks_stream");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ss_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "stocks_stream launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "stocks_stream launcher");
	RegisterBackgroundWorker(&worker);
}

static bool
start_worker(ManagedWorker *mw, const char *owner_name)
{
	BackgroundWorker worker = {0};
	WorkerArgs args = {mw->owner_id, mw->worker_no, mw->generation, launcher_generation};
	MemoryContext old;
	bool ok;

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stocks_stream");
	if (mw->is_source)
	{
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "ss_ingest_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "stocks_stream ingest %s", owner_name);
		snprintf(worker.bgw_type, BGW_MAXLEN, "stocks_stream ingest worker");
	}
	else
	{
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "ss_archive_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "stocks_stream archive %s/%d", owner_name,
				 mw->worker_no);
		snprintf(worker.bgw_type, BGW_MAXLEN, "stocks_stream archive worker");
	}
	worker.bgw_main_arg = Int32GetDatum(mw->owner_id);
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&worker, &mw->handle);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		mw->handle = NULL;
		ereport(WARNING, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						  errmsg("stocks_stream: could not start a worker for %s/%d", owner_name,
								 mw->worker_no),
						  errhint("Raise max_worker_processes.")));
		return false;
	}
	mw->started_at = GetCurrentTimestamp();
	return true;
}

static ManagedWorker *
find_managed(bool is_source, int owner_id, int worker_no)
{
	ListCell *lc;

	foreach (lc, managed)
	{
		ManagedWorker *mw = lfirst(lc);

		if (mw->is_source == is_source && mw->owner_id == owner_id && mw->worker_no == worker_no)
			return mw;
	}
	return NULL;
}

/* Notice workers that exited, and schedule their restart. */
static void
reap_exited(TimestampTz now)
{
	ListCell *lc;

	foreach (lc, managed)
	{
		ManagedWorker *mw = lfirst(lc);
		pid_t pid;

		if (mw->handle == NULL || GetBackgroundWorkerPid(mw->handle, &pid) != BGWH_STOPPED)
			continue;
		pfree(mw->handle);
		mw->handle = NULL;
		if (TimestampDifferenceExceeds(mw->started_at, now, HEALTHY_RUN_MS))
			mw->restart_delay_ms = MIN_RESTART_DELAY_MS;
		else
			mw->restart_delay_ms = Min(mw->restart_delay_ms * 2, MAX_RESTART_DELAY_MS);
		mw->restart_at = TimestampTzPlusMilliseconds(now, mw->restart_delay_ms);
	}
}

/* The managed worker for this slot, added (in TopMemoryContext) if new. */
static ManagedWorker *
managed_worker(const WantedOwner *wo, int worker_no)
{
	ManagedWorker *mw = find_managed(wo->is_source, wo->id, worker_no);
	MemoryContext old;

	if (mw != NULL)
		return mw;
	old = MemoryContextSwitchTo(TopMemoryContext);
	mw = palloc0(sizeof(ManagedWorker));
	mw->is_source = wo->is_source;
	mw->owner_id = wo->id;
	mw->worker_no = worker_no;
	mw->generation = wo->generation;
	mw->restart_delay_ms = MIN_RESTART_DELAY_MS;
	managed = lappend(managed, mw);
	MemoryContextSwitchTo(old);
	return mw;
}

/* Mark each wanted worker, and start those not running that are due. */
static void
start_wanted(List *wanted, TimestampTz now)
{
	ListCell *lc;

	foreach (lc, managed)
		((ManagedWorker *) lfirst(lc))->wanted = false;
	foreach (lc, wanted)
	{
		WantedOwner *wo = lfirst(lc);

		for (int w = 0; w < wo->workers; w++)
		{
			ManagedWorker *mw = managed_worker(wo, w);

			if (mw->generation != wo->generation)
				continue; /* altered: the old one is stopped first */
			mw->wanted = true;
			if (mw->handle == NULL && now >= mw->restart_at)
				start_worker(mw, wo->name);
		}
	}
}

/* Stop what is no longer wanted; forget it once it has exited. */
static void
stop_unwanted(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	List *keep = NIL;
	ListCell *lc;

	foreach (lc, managed)
	{
		ManagedWorker *mw = lfirst(lc);

		if (!mw->wanted && mw->handle != NULL)
			TerminateBackgroundWorker(mw->handle);
		if (mw->wanted || mw->handle != NULL)
			keep = lappend(keep, mw);
		else
			pfree(mw);
	}
	list_free(managed);
	managed = keep;
	MemoryContextSwitchTo(old);
}

/* Read what should run, and make the workers match it. */
static void
reconcile(void)
{
	TimestampTz now = GetCurrentTimestamp();
	List *wanted = ss_pipeline_store_wanted_workers();

	reap_exited(now);
	start_wanted(wanted, now);
	stop_unwanted();
}

static void
launcher_exit(int code, Datum arg)
{
	ss_worker_status_launcher_exited(launcher_generation);
}

/*
 * Workers that an earlier launcher started (it was terminated, or crashed
 * without taking the postmaster down) see that they are orphans and exit
 * on their next pass; the new launcher also asks them to, and waits until
 * they are gone before it starts any of its own, so a pipeline slot or a
 * source never has two workers.
 */
static void
retire_orphans(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ORPHAN_WAIT_MS);
	int pids[64];
	int n;

	while ((n = ss_worker_status_orphans(launcher_generation, pids, lengthof(pids))) > 0)
	{
		for (int i = 0; i < Min(n, (int) lengthof(pids)); i++)
			kill(pids[i], SIGTERM);
		if (GetCurrentTimestamp() > deadline)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
							errmsg("stocks_stream launcher: %d worker(s) of an earlier launcher "
								   "did not exit",
								   n),
							errhint("The launcher retries; pg_terminate_backend() ends them.")));
		ss_worker_loop_wait(100);
		CHECK_FOR_INTERRUPTS();
	}
}

void
ss_launcher_main(Datum main_arg)
{
	ss_worker_loop_setup();
	launcher_generation = ss_worker_status_launcher_started();
	before_shmem_exit(launcher_exit, (Datum) 0);
	ss_worker_loop_connect();
	pgstat_report_appname("stocks_stream launcher");
	ereport(LOG,
			(errmsg("stocks_stream launcher started in database \"%s\"", ss_settings_database)));
	retire_orphans();

	for (;;)
	{
		ss_worker_loop_launcher_pass();
		reconcile();
		ss_worker_loop_wait(ss_settings_launcher_naptime_ms);
	}
}
