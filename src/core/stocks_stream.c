/*
 * stocks_stream.c
 *	  Module start-up: settings, shared memory and the launcher.
 *
 * The extension must be in shared_preload_libraries: it needs shared memory
 * for worker status and a static background worker (the launcher).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "core/launcher.h"
#include "core/settings.h"
#include "core/worker_status.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	ss_worker_status_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	ss_worker_status_shmem_startup();
}

void
_PG_init(void)
{
	ss_settings_define();
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	ss_launcher_register();
}
