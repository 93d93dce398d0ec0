/*
 * s3_async.c
 *	  Non-blocking S3 requests, many side by side: the archive worker's PUTs
 *	  and the LISTs that look for objects uploaded but never recorded.
 *
 * A request is started (ss_s3_async_put, ss_s3_async_list) on an easy handle of
 * its own, added to one libcurl multi handle; the caller goes on with its
 * work and moves every request along with ss_s3_async_step, which also waits
 * on their sockets when asked to.  A finished request (ss_s3_async_done) is
 * handed back by ss_s3_async_end with its outcome, and its handle is kept for
 * the next request, so connections are reused (the multi handle holds the
 * connection cache).  ss_s3_async_end before a request finished abandons it.
 * How many travel at once is the caller's choice (ss_s3_async_in_flight).
 *
 * Everything runs on the backend's thread: libcurl works only inside
 * ss_s3_async_step, so bytes arriving in between wait in the socket buffers.
 * Requests live in TopMemoryContext: they outlast transactions, and their
 * owner ends each one, whatever happens to the statement.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "core/http.h"
#include "s3/s3.h"
#include "s3/s3_internal.h"

/* easy handles kept between requests, with their connections */
#define MAX_IDLE_HANDLES 64

struct S3Async
{
	CURL *handle;
	S3Call call;
	StringInfo response; /* a LIST's page; NULL for a PUT */
	bool done;
	CURLcode rc;
};

static CURLM *multi = NULL;
static int in_flight = 0;
static CURL *idle[MAX_IDLE_HANDLES];
static int nidle = 0;

static CURL *
take_handle(void)
{
	CURL *handle = NULL;

	if (nidle > 0)
		handle = idle[--nidle];
	ss_http_ready_handle(&handle);
	if (multi == NULL && (multi = curl_multi_init()) == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("stocks_stream: could not create a libcurl multi handle")));
	return handle;
}

/* A finished request's handle: kept when its connection is worth keeping. */
static void
give_back_handle(CURL *handle, bool healthy)
{
	if (healthy && nidle < MAX_IDLE_HANDLES)
		idle[nidle++] = handle;
	else
		curl_easy_cleanup(handle);
}

static S3Async *
start(const char *method, const char *bucket, const char *key, const char *query, const char *data,
	  size_t len, const char *content_type, bool collect)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	S3Async *r = palloc0(sizeof(S3Async));

	r->handle = take_handle();
	if (collect)
		r->response = makeStringInfo();
	ss_s3_prepare_call(&r->call, r->handle, method, bucket, key, query, data, len, content_type,
					   r->response);
	curl_easy_setopt(r->handle, CURLOPT_PRIVATE, r);
	MemoryContextSwitchTo(old);
	curl_multi_add_handle(multi, r->handle);
	in_flight++;
	return r;
}

S3Async *
ss_s3_async_put(const char *bucket, const char *key, const char *data, size_t len,
				const char *content_type)
{
	return start("PUT", bucket, key, NULL, data, len, content_type, false);
}

/* The first page (S3_LIST_PAGE_KEYS keys) of what is under `prefix`. */
S3Async *
ss_s3_async_list(const char *bucket, const char *prefix)
{
	char *query = ss_s3_list_query(prefix, NULL, NULL, NULL);
	S3Async *r = start("GET", bucket, NULL, query, NULL, 0, NULL, true);

	pfree(query);
	return r;
}

/*
 * Move every request along: whatever can be sent or received now; then,
 * if none finished and wait_ms > 0, wait up to wait_ms for a socket and
 * take what came.
 */
void
ss_s3_async_step(int wait_ms)
{
	int running = 0;
	int left;
	bool finished = false;
	CURLMsg *m;

	if (multi == NULL || in_flight == 0)
		return;
	for (int pass = 0; pass < 2; pass++)
	{
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL)
		{
			S3Async *r = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &r);
			r->done = true;
			r->rc = m->data.result;
			finished = true;
		}
		if (finished || running == 0 || wait_ms <= 0 || pass > 0)
			break;
		curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
	}
}

bool
ss_s3_async_done(const S3Async *request)
{
	return request->done;
}

int
ss_s3_async_in_flight(void)
{
	return in_flight;
}

/*
 * The outcome of a finished request and, for a LIST, the keys of its page
 * (keys may be NULL); called before it finished, it abandons it (its
 * connection is dropped).  Frees the request.
 */
S3Result
ss_s3_async_end(S3Async *request, List **keys)
{
	S3Result res;

	curl_multi_remove_handle(multi, request->handle);
	in_flight--;
	res = ss_s3_finish_call(&request->call, request->handle,
							request->done ? request->rc : CURLE_ABORTED_BY_CALLBACK);
	give_back_handle(request->handle, res.ok);
	if (keys != NULL)
	{
		*keys = NIL;
		if (res.ok && request->response != NULL)
		{
			int refused = 0;

			(void) ss_s3_list_page_parse(request->response->data, keys, NULL, NULL, &refused);
		}
	}
	if (request->response != NULL)
	{
		pfree(request->response->data);
		pfree(request->response);
	}
	pfree(request);
	return res;
}

/* Drop the idle handles and, with nothing in flight, the connection cache. */
void
ss_s3_async_reset_connections(void)
{
	while (nidle > 0)
		curl_easy_cleanup(idle[--nidle]);
	if (multi != NULL && in_flight == 0)
	{
		curl_multi_cleanup(multi);
		multi = NULL;
	}
}
