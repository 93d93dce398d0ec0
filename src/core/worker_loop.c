/*
 * worker_loop.c
 *	  The start and the loop pass that the launcher and the archive and
 *	  ingest workers share, in the shape of worker_spi and pg_cron.
 *
 * Each pass of a loop serves interrupts (SIGTERM: die), exits when the
 * postmaster is gone, reloads the settings after a SIGHUP, and resets the
 * pass's memory context and makes it current: what a pass allocates and
 * does not keep is freed by the next one, so a loop cannot leak.  What
 * outlives a pass is allocated in a context of its own (or TopMemoryContext)
 * on purpose.
 *
 * A worker is started by the launcher with its WorkerArgs in bgw_extra.
 * Its passes also exit when the launcher that started it is gone or was
 * replaced, so a restarted launcher never runs its workers beside the old
 * ones.  Waits inside a pass (for Kafka, for S3) serve the same signals
 * with ss_worker_loop_serve(), which leaves the pass's memory alone.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "core/secrets.h"
#include "core/settings.h"
#include "core/worker_loop.h"

WorkerArgs ss_worker_loop_args;

static MemoryContext pass_context = NULL;
static WorkerStatus *status = NULL;

/*
 * Every message the launcher or a worker writes says which one it is, in
 * its CONTEXT line ("stocks_stream archive <pipeline>/<n>": its bgw_name),
 * whichever layer wrote it (src/README.md, "Messages").
 */
static void
name_this_worker(void *arg)
{
	errcontext("%s", MyBgworkerEntry->bgw_name);
}

static ErrorContextCallback worker_context = {.callback = name_this_worker};

/*
 * Set up signals (SIGHUP: reload, SIGTERM: die), the pass's context and
 * the worker's name in every message.
 */
void
ss_worker_loop_setup(void)
{
	worker_context.previous = error_context_stack;
	error_context_stack = &worker_context;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pass_context =
		AllocSetContextCreate(TopMemoryContext, "stocks_stream loop pass", ALLOCSET_DEFAULT_SIZES);
}

/* Serve interrupts (SIGTERM ends the process here) and the postmaster's death. */
static void
serve_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
}

/* Reload the settings after a SIGHUP; true when they were reloaded. */
static bool
reload_settings(void)
{
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	return true;
}

/* Free what the last pass allocated, and allocate in the pass's context. */
static void
begin_pass_memory(void)
{
	MemoryContextReset(pass_context);
	MemoryContextSwitchTo(pass_context);
}

/*
 * Begin a pass of the launcher's loop: serve signals, then start the
 * pass's memory afresh.  Returns true when the settings were reloaded.
 */
bool
ss_worker_loop_launcher_pass(void)
{
	bool reloaded;

	serve_interrupts();
	reloaded = reload_settings();
	begin_pass_memory();
	return reloaded;
}

/* Sleep on the latch up to timeout_ms (it may return early). */
void
ss_worker_loop_wait(long timeout_ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

static void
release_status(int code, Datum arg)
{
	ss_worker_status_release(status);
}

/*
 * Connect to the served database.  The session's search_path is pinned to
 * pg_catalog first, so the workers' own queries never resolve a function
 * or operator to an overload in a schema a user can write (an exact-type
 * match in public wins over pg_catalog's polymorphic one even where
 * pg_catalog is searched first); the extension's objects are always
 * schema-qualified.  Set as a session value, so the SET clauses of the
 * functions the workers call still apply.
 */
void
ss_worker_loop_connect(void)
{
	BackgroundWorkerInitializeConnection(ss_settings_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
}

/* the Kafka settings this worker's client was made with */
static char *kafka_fingerprint = NULL;

/* Read the launcher's arguments, set up the loop, connect to the database. */
void
ss_worker_loop_start(void)
{
	memcpy(&ss_worker_loop_args, MyBgworkerEntry->bgw_extra, sizeof(WorkerArgs));
	ss_worker_loop_setup();
	ss_worker_loop_connect();
	kafka_fingerprint = MemoryContextStrdup(TopMemoryContext, ss_secrets_kafka_fingerprint());
}

/*
 * After a reload: a Kafka client cannot change its settings, so a worker
 * whose Kafka settings changed exits, and the launcher starts it again
 * with the new ones (archive workers resume from the stored offsets).
 */
static void
exit_if_kafka_settings_changed(void)
{
	char *fingerprint = ss_secrets_kafka_fingerprint();

	if (strcmp(fingerprint, kafka_fingerprint) != 0)
	{
		ereport(LOG, (errmsg("stocks_stream worker for \"%s\"/%d: Kafka settings changed, "
							 "restarting",
							 MyBgworkerEntry->bgw_name, ss_worker_loop_args.worker_no)));
		proc_exit(1);
	}
	pfree(fingerprint);
}

/*
 * Claim this worker's status slot, released at exit.  A worker whose
 * launcher was replaced while it started, or whose slot another worker
 * holds, exits here.
 */
WorkerStatus *
ss_worker_loop_claim_status(WorkerKind kind, int owner_id, const char *owner_name)
{
	status = ss_worker_status_claim(kind, owner_id, owner_name, ss_worker_loop_args.worker_no,
									ss_worker_loop_args.launcher_generation);
	if (status == NULL)
	{
		ereport(LOG, (errmsg("stocks_stream worker for \"%s\"/%d exits: its launcher is gone or "
							 "another worker runs it",
							 owner_name, ss_worker_loop_args.worker_no)));
		proc_exit(0);
	}
	before_shmem_exit(release_status, (Datum) 0);
	return status;
}

/* Exit when the launcher that started this worker is no longer current. */
static void
exit_if_orphaned(void)
{
	if (ss_worker_status_launcher_is_current(ss_worker_loop_args.launcher_generation))
		return;
	ereport(LOG, (errmsg("stocks_stream worker exits: the launcher that started it is gone")));
	proc_exit(0);
}

/*
 * A worker's wait inside a pass: serve signals and exit when orphaned, the
 * pass's memory kept.  Returns true when the settings were reloaded.
 */
bool
ss_worker_loop_serve(void)
{
	bool reloaded;

	serve_interrupts();
	exit_if_orphaned();
	reloaded = reload_settings();
	if (reloaded)
		exit_if_kafka_settings_changed();
	return reloaded;
}

/*
 * Begin a pass of a worker's loop: ss_worker_loop_serve(), then start the
 * pass's memory afresh.  Returns true when the settings were reloaded
 * (the caller may need to act on them).
 */
bool
ss_worker_loop_pass(void)
{
	bool reloaded = ss_worker_loop_serve();

	begin_pass_memory();
	return reloaded;
}
