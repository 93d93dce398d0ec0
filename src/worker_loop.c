/*
 * worker_loop.c
 *	  The start and the loop pass that the archive and ingest workers share,
 *	  in the shape of worker_spi and pg_cron.
 *
 * A worker is started by the launcher with its WorkerArgs in bgw_extra.
 * Each pass of its loop serves interrupts (SIGTERM: die), exits when the
 * postmaster is gone, exits when the launcher that started it is gone or
 * was replaced (so a restarted launcher never runs its workers beside the
 * old ones), and reloads the settings after a SIGHUP.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

#include "settings.h"
#include "worker_loop.h"

WorkerArgs ss_worker_args;

static WorkerStatus *status = NULL;

static void
release_status(int code, Datum arg)
{
	ss_status_release(status);
}

/* Read the launcher's arguments, set up signals, connect to the database. */
void
ss_worker_start(void)
{
	memcpy(&ss_worker_args, MyBgworkerEntry->bgw_extra, sizeof(WorkerArgs));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(ss_database, NULL, 0);
}

/*
 * Claim this worker's status slot, released at exit.  A worker whose
 * launcher was replaced while it started, or whose slot another worker
 * holds, exits here.
 */
WorkerStatus *
ss_worker_claim_status(WorkerKind kind, int owner_id, const char *owner_name)
{
	status = ss_status_claim(kind, owner_id, owner_name, ss_worker_args.worker_no,
							 ss_worker_args.launcher_generation);
	if (status == NULL)
	{
		ereport(LOG, (errmsg("stocks_stream worker for \"%s\"/%d exits: its launcher is gone or "
							 "another worker runs it",
							 owner_name, ss_worker_args.worker_no)));
		proc_exit(0);
	}
	before_shmem_exit(release_status, (Datum) 0);
	return status;
}

/*
 * One pass's checks.  Returns true when the settings were reloaded (the
 * caller may need to act on them).
 */
bool
ss_worker_pass(void)
{
	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
	if (!ss_status_launcher_is_current(ss_worker_args.launcher_generation))
	{
		ereport(LOG, (errmsg("stocks_stream worker exits: the launcher that started it is gone")));
		proc_exit(0);
	}
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	return true;
}
