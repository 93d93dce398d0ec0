/*
 * archive_probe.c
 *	  Look for an object that a worker put in S3 where a partition now
 *	  resumes, but never recorded (it crashed, was stopped, or lost the
 *	  partition between its PUT and its record).
 *
 * The archive worker probes once per partition and assignment, when the
 * partition's first message arrives: the key of the object that message
 * would start is known up to its last offset (ss_object_key_format_start).
 * The first batch then ends where an unrecorded object found there ends, so
 * its PUT writes the very same bytes under the very same key instead of
 * leaving an overlapping object beside it.
 *
 * The answer for many partitions usually comes from one request: the first
 * probe into an hour's folder lists the whole folder, and when that takes
 * less than a page of keys, the listing answers every later probe into the
 * same folder too.  That is the common case after an assignment (the
 * folder of the hour the pipeline is in, or a new pipeline's), and it
 * spares the S3 server one LIST per partition: at 512 partitions those
 * LISTs cost MinIO half a CPU second (bench/NOTEBOOK.md).  When the folder
 * holds a page or more, each probe into it lists its own key's start, one
 * request per partition.  A listing is as old as the partition's first
 * message or a little older, taken after the assignment either way; an
 * object put later still (by a zombie) is kept apart by its own key and
 * fenced off in the manifest, as it always was.
 *
 * A probe sends nothing by itself: the worker sends the one request it
 * waits for (ss_archive_probe_send) when there is room, and counts those on
 * their way (ss_archive_probe_requests), so its S3 requests stay within
 * stocks_stream.archive_requests_in_flight.
 */
#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "archive/archive_probe.h"
#include "archive/object_key.h"
#include "s3/s3.h"

#define MAX_FOLDERS 4 /* hour folders listed at once (an assignment straddles an hour) */

/* One hour folder's listing, shared by the probes into it. */
typedef struct FolderListing
{
	char *folder;	  /* <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/ */
	bool sent;		  /* its LIST went to S3 */
	S3Async *request; /* on its way; NULL before it is sent and once answered */
	bool complete;	  /* answered with every key of the folder */
	List *keys;		  /* those keys, when complete */
	int users;		  /* probes that wait for it or read it */
	bool forgotten;	  /* out of the cache; freed with its last user */
} FolderListing;

struct ArchiveProbe
{
	char *key_start;		/* <folder><partition>-<first offset>- */
	FolderListing *listing; /* the folder's listing it reads; NULL: none */
	S3Async *request;		/* its own LIST; NULL: none */
};

static MemoryContext probe_cxt = NULL;
static char *bucket = NULL;
static ObjectFormat format = OBJECT_FORMAT_NDJSON;
static FolderListing *folders[MAX_FOLDERS];
static int nfolders = 0;
static int requests = 0;

void
ss_archive_probe_configure(const char *bucket_name, ObjectFormat object_format)
{
	if (probe_cxt == NULL)
		probe_cxt = AllocSetContextCreate(TopMemoryContext, "stocks_stream archive probes",
										  ALLOCSET_DEFAULT_SIZES);
	if (bucket != NULL)
		pfree(bucket);
	bucket = MemoryContextStrdup(probe_cxt, bucket_name);
	format = object_format;
}

static S3Async *
send_list(const char *prefix)
{
	requests++;
	return ss_s3_async_list(bucket, prefix);
}

/* End a request (finished or not), with the keys of its page when it succeeded. */
static List *
end_list(S3Async **request, bool *ok)
{
	List *keys = NIL;
	S3Result res = ss_s3_async_end(*request, &keys);

	*request = NULL;
	requests--;
	*ok = res.ok;
	return keys;
}

static FolderListing *
find_folder(const char *folder)
{
	for (int i = 0; i < nfolders; i++)
		if (strcmp(folders[i]->folder, folder) == 0)
			return folders[i];
	return NULL;
}

/* The folder's listing: the cached one, a new one (not sent yet), or NULL when the cache is full.
 */
static FolderListing *
listing_for(const char *key_start)
{
	const char *slash = strrchr(key_start, '/');
	char *folder = pnstrdup(key_start, slash - key_start + 1);
	FolderListing *f = find_folder(folder);

	if (f == NULL && nfolders < MAX_FOLDERS)
	{
		f = palloc0(sizeof(FolderListing));
		f->folder = folder;
		folders[nfolders++] = f;
	}
	else
		pfree(folder);
	return f;
}

/* Take the folder's answer if it has come: complete with less than a page, or not. */
static void
conclude_listing(FolderListing *f)
{
	MemoryContext old;
	bool ok;

	if (f->request == NULL || !ss_s3_async_done(f->request))
		return;
	old = MemoryContextSwitchTo(probe_cxt);
	f->keys = end_list(&f->request, &ok);
	MemoryContextSwitchTo(old);
	f->complete = ok && list_length(f->keys) < S3_LIST_PAGE_KEYS;
	if (!f->complete)
	{
		list_free_deep(f->keys);
		f->keys = NIL;
	}
}

static void
release_listing(FolderListing *f)
{
	if (--f->users > 0 || !f->forgotten)
		return;
	if (f->request != NULL)
	{
		bool ok;

		list_free_deep(end_list(&f->request, &ok));
	}
	list_free_deep(f->keys);
	pfree(f->folder);
	pfree(f);
}

/*
 * A probe for the object that would begin with `key_start`.  It sends
 * nothing yet: the request it needs, if any (ss_archive_probe_needs_request),
 * goes with ss_archive_probe_send, when the caller has room for it.
 */
ArchiveProbe *
ss_archive_probe_start(const char *key_start)
{
	MemoryContext old = MemoryContextSwitchTo(probe_cxt);
	ArchiveProbe *p = palloc0(sizeof(ArchiveProbe));

	p->key_start = pstrdup(key_start);
	p->listing = listing_for(key_start);
	if (p->listing != NULL)
		p->listing->users++;
	MemoryContextSwitchTo(old);
	return p;
}

/*
 * Does the probe wait for a request that has not gone yet: its folder's
 * listing, or its own LIST (its folder turned out too full, or the cache
 * had no room for it)?
 */
bool
ss_archive_probe_needs_request(ArchiveProbe *p)
{
	if (p->listing != NULL)
	{
		conclude_listing(p->listing);
		if (!p->listing->sent)
			return true;
		if (p->listing->request != NULL || p->listing->complete)
			return false;
		release_listing(p->listing);
		p->listing = NULL;
	}
	return p->request == NULL;
}

void
ss_archive_probe_send(ArchiveProbe *p)
{
	Assert(ss_archive_probe_needs_request(p));
	if (p->listing != NULL)
	{
		p->listing->request = send_list(p->listing->folder);
		p->listing->sent = true;
	}
	else
		p->request = send_list(p->key_start);
}

/* Has the probe its answer (ss_archive_probe_end will not wait)? */
bool
ss_archive_probe_answered(ArchiveProbe *p)
{
	if (ss_archive_probe_needs_request(p))
		return false;
	if (p->request != NULL)
		return ss_s3_async_done(p->request);
	return p->listing->request == NULL;
}

/*
 * The last offset of the unrecorded object that starts where the probe
 * looked, or -1 when there is none (or S3 did not answer: the batch is cut
 * as usual).  Frees the probe.
 */
int64
ss_archive_probe_end(ArchiveProbe *p)
{
	List *keys;
	ListCell *lc;
	size_t start_len = strlen(p->key_start);
	int64 end_at = -1;
	bool ok;

	Assert(ss_archive_probe_answered(p));
	keys = p->request != NULL ? end_list(&p->request, &ok) : p->listing->keys;
	foreach (lc, keys)
	{
		const char *key = lfirst(lc);
		ObjectKey k;

		if (strncmp(key, p->key_start, start_len) == 0 &&
			ss_object_key_parse(key, &k) == OBJECT_KEY_ARCHIVE && k.format == format)
			end_at = Max(end_at, k.last_offset);
	}
	if (p->listing == NULL)
		list_free_deep(keys);
	ss_archive_probe_abandon(p);
	return end_at;
}

/* A probe no longer wanted (its partition was revoked or reassigned); frees it. */
void
ss_archive_probe_abandon(ArchiveProbe *p)
{
	bool ok;

	if (p->request != NULL)
		list_free_deep(end_list(&p->request, &ok));
	if (p->listing != NULL)
		release_listing(p->listing);
	pfree(p->key_start);
	pfree(p);
}

/*
 * Forget the folders' listings (at an assignment, or once every partition
 * has probed): a later probe lists afresh.  Listings still read by a probe
 * go with their last one.
 */
void
ss_archive_probe_forget_folders(void)
{
	for (int i = 0; i < nfolders; i++)
	{
		folders[i]->forgotten = true;
		folders[i]->users++;
		release_listing(folders[i]);
	}
	nfolders = 0;
}

/* LISTs of probes and folders on their way to S3. */
int
ss_archive_probe_requests(void)
{
	return requests;
}
