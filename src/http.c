/*
 * http.c
 *	  The libcurl setup every stocks_stream HTTP request shares (S3 and
 *	  Finnhub): one global initialisation, easy handles kept for connection
 *	  reuse, and the options each request needs in a backend.
 *
 * Requests run on the backend's main thread, so libcurl must not use
 * signals (CURLOPT_NOSIGNAL), and a transfer is aborted from its progress
 * callback as soon as the backend is asked to terminate, so SIGTERM is
 * never held up by a slow server.  Every socket libcurl opens is counted
 * among the backend's file descriptors (see open_counted_socket).
 */
#include "postgres.h"

#include <sys/socket.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "http.h"

/* libcurl's global initialisation, once per process, before any handle. */
void
ss_http_init(void)
{
	static bool global_done = false;

	if (!global_done)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not initialise libcurl")));
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
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not create a libcurl handle")));
	}
	else
		curl_easy_reset(*handle);
}

/* Abort a transfer as soon as the backend is asked to terminate. */
static int
abort_on_die(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	return ProcDiePending ? 1 : 0;
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
	curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, abort_on_die);
	curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, open_counted_socket);
	curl_easy_setopt(handle, CURLOPT_CLOSESOCKETFUNCTION, close_counted_socket);
}
