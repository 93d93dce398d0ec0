/*
 * archive_probe.h
 *	  The archive worker's look for an object that was put in S3 but never
 *	  recorded, where a partition resumes after an assignment.
 */
#ifndef STOCKS_STREAM_ARCHIVE_PROBE_H
#define STOCKS_STREAM_ARCHIVE_PROBE_H

#include "archive/object_key.h"

typedef struct ArchiveProbe ArchiveProbe;

extern void ss_archive_probe_configure(const char *bucket, ObjectFormat format);
extern ArchiveProbe *ss_archive_probe_start(const char *key_start);
extern bool ss_archive_probe_answered(ArchiveProbe *probe);
extern bool ss_archive_probe_needs_request(ArchiveProbe *probe);
extern void ss_archive_probe_send(ArchiveProbe *probe);
extern int64 ss_archive_probe_end(ArchiveProbe *probe);
extern void ss_archive_probe_abandon(ArchiveProbe *probe);
extern void ss_archive_probe_forget_folders(void);
extern int ss_archive_probe_requests(void);

#endif
