/*
 * s3_fetch.c
 *	  Many GETs in flight: objects asked for in a list are fetched over one
 *	  libcurl multi handle and handed back one by one, in the order asked.
 *
 * The loaders queue the objects they will read (ss_s3_fetch_add) and then
 * take them in that order (ss_s3_fetch_next), so what they write follows the
 * same order as one GET at a time would.  Up to max_in_flight requests
 * travel at once, each on an easy handle of its own (kept, with its
 * connection, from one object to the next).  Memory is bounded: a transfer
 * that would hold more than max_bytes of bodies received and not yet taken
 * is paused (CURL_WRITEFUNC_PAUSE) until objects before it are taken; the
 * object taken next is never paused, whatever its size.
 *
 * Everything runs on the backend's thread: libcurl works only inside
 * ss_s3_fetch_next, which the caller calls between objects, so responses that
 * arrive while an object is being loaded wait in the socket buffers.  The
 * handles belong to the fetch's memory context and are freed with it, so
 * an ERROR that ends the statement leaves no transfer behind.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "core/http.h"
#include "s3/s3.h"
#include "s3/s3_internal.h"

/* how long one wait for the sockets lasts before interrupts are checked */
#define FETCH_POLL_MS 100

typedef struct FetchSlot
{
	struct S3Fetch *fetch;
	CURL *handle;
	S3Call call;
	StringInfoData body;
	int item;	 /* the queued object it fetches, -1 when free */
	bool paused; /* waits for room in the buffer */
	bool done;
	CURLcode rc;
} FetchSlot;

typedef struct FetchItem
{
	char *bucket;
	char *key;
} FetchItem;

struct S3Fetch
{
	MemoryContext cxt;
	MemoryContextCallback cleanup;
	CURLM *multi;
	int nslots;
	FetchSlot *slots; /* item i is fetched by slot i % nslots */
	FetchItem *items;
	int nitems;
	int maxitems;
	int next_start; /* the first queued object not asked for yet */
	int next_take;	/* the first not taken yet */
	Size max_bytes;
	Size buffered; /* bytes received and not taken */
	Size peak;	   /* the most buffered at once */
};

/* Free the handles with the memory context, however the statement ends. */
static void
fetch_cleanup(void *arg)
{
	S3Fetch *f = arg;

	for (int i = 0; i < f->nslots; i++)
	{
		FetchSlot *s = &f->slots[i];

		if (s->handle == NULL)
			continue;
		if (s->item >= 0)
		{
			curl_multi_remove_handle(f->multi, s->handle);
			curl_slist_free_all(s->call.headers);
		}
		curl_easy_cleanup(s->handle);
	}
	if (f->multi != NULL)
		curl_multi_cleanup(f->multi);
}

/*
 * A fetch of up to max_in_flight objects at once holding up to max_bytes
 * of bodies not taken yet; it lives in the current memory context.
 */
S3Fetch *
ss_s3_fetch_begin(int max_in_flight, Size max_bytes)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "stocks_stream S3 fetch",
											  ALLOCSET_DEFAULT_SIZES);
	S3Fetch *f = MemoryContextAllocZero(cxt, sizeof(S3Fetch));

	f->cxt = cxt;
	f->nslots = Max(max_in_flight, 1);
	f->max_bytes = max_bytes;
	f->slots = MemoryContextAllocZero(cxt, sizeof(FetchSlot) * f->nslots);
	for (int i = 0; i < f->nslots; i++)
	{
		f->slots[i].fetch = f;
		f->slots[i].item = -1;
	}
	f->maxitems = 64;
	f->items = MemoryContextAlloc(cxt, sizeof(FetchItem) * f->maxitems);
	f->cleanup.func = fetch_cleanup;
	f->cleanup.arg = f;
	MemoryContextRegisterResetCallback(cxt, &f->cleanup);
	ss_http_init();
	if ((f->multi = curl_multi_init()) == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("stocks_stream: could not create a libcurl multi handle")));
	return f;
}

/* Queue an object; ss_s3_fetch_next hands the queued objects back in order. */
void
ss_s3_fetch_add(S3Fetch *f, const char *bucket, const char *key)
{
	if (f->nitems == f->maxitems)
	{
		f->maxitems *= 2;
		f->items = repalloc(f->items, sizeof(FetchItem) * f->maxitems);
	}
	f->items[f->nitems].bucket = MemoryContextStrdup(f->cxt, bucket);
	f->items[f->nitems].key = MemoryContextStrdup(f->cxt, key);
	f->nitems++;
}

/* Collect a body, or pause when it would overfill the buffer. */
static size_t
fetch_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FetchSlot *s = userdata;
	S3Fetch *f = s->fetch;
	size_t n = size * nmemb;

	if (s->item != f->next_take && f->buffered + n > f->max_bytes)
	{
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	f->buffered += n;
	f->peak = Max(f->peak, f->buffered);
	return ss_s3_write_body_cb(ptr, size, nmemb, &s->call.st);
}

/* Ask for the queued objects that have a free slot, head first. */
static void
start_more(S3Fetch *f)
{
	MemoryContext old = MemoryContextSwitchTo(f->cxt);

	while (f->next_start < f->nitems && f->next_start < f->next_take + f->nslots)
	{
		FetchSlot *s = &f->slots[f->next_start % f->nslots];
		FetchItem *it = &f->items[f->next_start];

		Assert(s->item < 0);
		ss_http_ready_handle(&s->handle);
		if (s->body.data == NULL)
			initStringInfo(&s->body);
		resetStringInfo(&s->body);
		ss_s3_prepare_call(&s->call, s->handle, "GET", it->bucket, it->key, NULL, NULL, 0, NULL,
						   &s->body);
		curl_easy_setopt(s->handle, CURLOPT_WRITEFUNCTION, fetch_write_cb);
		curl_easy_setopt(s->handle, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(s->handle, CURLOPT_PRIVATE, s);
		s->item = f->next_start++;
		s->paused = s->done = false;
		if (curl_multi_add_handle(f->multi, s->handle) != CURLM_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("stocks_stream: could not add a request to a libcurl multi handle")));
	}
	MemoryContextSwitchTo(old);
}

/* Let libcurl send and receive what it can now; note finished transfers. */
static void
perform(S3Fetch *f)
{
	int running;
	int left;
	CURLMsg *m;

	curl_multi_perform(f->multi, &running);
	while ((m = curl_multi_info_read(f->multi, &left)) != NULL)
	{
		FetchSlot *s;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &s);
		s->done = true;
		s->rc = m->data.result;
	}
}

/* Resume the paused transfers: objects before them were taken. */
static void
resume_paused(S3Fetch *f)
{
	for (int i = 0; i < f->nslots; i++)
		if (f->slots[i].item >= 0 && f->slots[i].paused)
		{
			f->slots[i].paused = false;
			curl_easy_pause(f->slots[i].handle, CURLPAUSE_CONT);
		}
}

/*
 * The next queued object: its body into `body` (reset first) and the GET's
 * outcome.  Waits for it while the other transfers go on.
 */
S3Result
ss_s3_fetch_next(S3Fetch *f, StringInfo body)
{
	FetchSlot *s;
	S3Result res;

	if (f->next_take >= f->nitems)
		elog(ERROR, "stocks_stream: no S3 object is left to fetch");
	s = &f->slots[f->next_take % f->nslots];
	start_more(f);
	if (s->paused)
		resume_paused(f);
	perform(f);
	while (!s->done)
	{
		curl_multi_poll(f->multi, NULL, 0, FETCH_POLL_MS, NULL);
		CHECK_FOR_INTERRUPTS();
		perform(f);
	}
	/* a transfer ended for a cancel or a timeout: raise it, never load a part */
	CHECK_FOR_INTERRUPTS();
	curl_multi_remove_handle(f->multi, s->handle);
	res = ss_s3_finish_call(&s->call, s->handle, s->rc);
	resetStringInfo(body);
	appendBinaryStringInfo(body, s->body.data, s->body.len);
	f->buffered -= s->body.len;
	/* a big body is not kept for the next object of this slot */
	if (s->body.maxlen > 4 * 1024 * 1024)
	{
		pfree(s->body.data);
		s->body.data = NULL;
	}
	s->item = -1;
	f->next_take++;
	resume_paused(f);
	start_more(f);
	perform(f);
	return res;
}

/* Drop the fetch: transfers still under way are abandoned. */
void
ss_s3_fetch_end(S3Fetch *f)
{
	ereport(DEBUG1, (errmsg("stocks_stream: %d objects fetched, %d at a time, at most %zu bytes "
							"received and not yet taken (buffer %zu)",
							f->next_take, f->nslots, f->peak, f->max_bytes)));
	MemoryContextDelete(f->cxt);
}
