/*
 * archive_worker.h
 *	  Entry point of the Kafka -> S3 archive background worker.
 */
#ifndef STOCKS_STREAM_ARCHIVE_WORKER_H
#define STOCKS_STREAM_ARCHIVE_WORKER_H

#include "postgres.h"

extern PGDLLEXPORT void ss_archive_worker_main(Datum main_arg);

#endif
