/*
 * http.c
 *	  The libcurl setup every stocks_stream HTTP request shares (S3 and
 *	  Finnhub): one global initialisation, easy handles kept for connection
 *	  reuse, and the options each request needs in a backend.
 *
 * Requests run on the backend's main thread, so libcurl must not use
 * signals (CURLOPT_NOSIGNAL), and a transfer is aborted from its progress
 * callback as soon as the backend is asked to terminate or cancel, so
 * SIGTERM, pg_cancel_backend() and statement_timeout are never held up by
 * a slow server.  Callbacks never ereport: they append within a bound
 * (ss_http_append) and leave errors to the caller.  Every socket libcurl opens is counted
 * among the backend's file descriptors (see open_counted_socket).
 */
#include "postgres.h"

#include <sys/socket.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "core/http.h"

/* libcurl's global initialisation, once per process, before any handle. */
void
ss_http_init(void)
{
	static bool global_done = false;

	if (!global_done)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("stocks_stream: could not initialise libcurl")));
		global_done = true;
	}
}

/*
 * Make *handle ready for a new request: created on first use (libcurl
 * initialised then too), reset otherwise so its connection is reused.
 */
void
ss_http_ready_handle(CURL **handle)
{
	ss_http_init();
	if (*handle == NULL)
	{
		*handle = curl_easy_init();
		if (*handle == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("stocks_stream: could not create a libcurl handle")));
	}
	else
		curl_easy_reset(*handle);
}

/*
 * Abort a transfer as soon as the backend is asked to terminate or to
 * cancel its statement (pg_cancel_backend, statement_timeout): libcurl
 * calls this about once a second even when nothing moves.  It only looks
 * at flags; the caller's CHECK_FOR_INTERRUPTS raises the error once
 * libcurl has returned.
 */
static int
abort_on_interrupt(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
				   curl_off_t ulnow)
{
	return (ProcDiePending || QueryCancelPending) ? 1 : 0;
}

/*
 * Append n bytes to buf, which may hold at most max bytes, from inside a
 * libcurl callback: never ereports.  False (nothing appended) when the
 * bytes would go over max or no memory is to be had; the callback then
 * ends the transfer and the caller reports why after it returns.
 */
bool
ss_http_append(StringInfo buf, const char *data, size_t n, size_t max, bool *too_large)
{
	size_t need = (size_t) buf->len + n + 1;

	*too_large = (size_t) buf->len + n > max || need > MaxAllocSize;
	if (*too_large)
		return false;
	if (need > (size_t) buf->maxlen)
	{
		size_t cap = Min(Max(need, (size_t) buf->maxlen * 2), (size_t) MaxAllocSize);
		char *p =
			MemoryContextAllocExtended(GetMemoryChunkContext(buf->data), cap, MCXT_ALLOC_NO_OOM);

		if (p == NULL)
			return false;
		memcpy(p, buf->data, buf->len);
		pfree(buf->data);
		buf->data = p;
		buf->maxlen = (int) cap;
	}
	memcpy(buf->data + buf->len, data, n);
	buf->len += (int) n;
	buf->data[buf->len] = '\0';
	return true;
}

/*
 * PostgreSQL keeps as many files open as the process's descriptor limit
 * allows, less those it knows others hold (ReserveExternalFD).  A socket
 * it does not know of takes one of its descriptors: a load touching a
 * year of daily partitions, with GETs in flight, ran the backend out of
 * descriptors, and a shared-memory segment the statistics needed could not
 * be mapped (then the backend crashed in pgstat_report_stat).  So each
 * socket libcurl opens is counted while it is open.
 */
static curl_socket_t
open_counted_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	curl_socket_t s = socket(address->family, address->socktype, address->protocol);

	if (s != CURL_SOCKET_BAD)
		ReserveExternalFD();
	return s;
}

static int
close_counted_socket(void *clientp, curl_socket_t item)
{
	ReleaseExternalFD();
	return close(item);
}

/*
 * The options of every request: no signals, errors into error_buffer (of
 * CURL_ERROR_SIZE, kept until the request ends), bounded connect and total
 * time, the abort on SIGTERM, and sockets counted as the backend's.
 */
void
ss_http_set_defaults(CURL *handle, char *error_buffer, long timeout_ms)
{
	curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
	/* a URL's path is sent as we built it: no "/../" is ever collapsed */
	curl_easy_setopt(handle, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, abort_on_interrupt);
	curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, open_counted_socket);
	curl_easy_setopt(handle, CURLOPT_CLOSESOCKETFUNCTION, close_counted_socket);
}
