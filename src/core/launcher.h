/*
 * launcher.h
 *	  The launcher background worker, which runs the archive workers.
 */
#ifndef STOCKS_STREAM_LAUNCHER_H
#define STOCKS_STREAM_LAUNCHER_H

#include "postgres.h"

extern void ss_launcher_register(void);
extern PGDLLEXPORT void ss_launcher_main(Datum main_arg);

#endif
