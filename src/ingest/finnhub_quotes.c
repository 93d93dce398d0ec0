/*
 * finnhub_quotes.c
 *	  The finnhub_quotes source: polls GET /quote for each symbol within a
 *	  call budget and produces each new quote.
 *
 * Calls are spread evenly: one every max(poll_interval / symbols,
 * 60 s / calls_per_minute, 1/30 s).  The API key travels in the
 * X-Finnhub-Token header, never in the URL, so no log line can carry it.
 * On 429 the worker backs off (doubling, up to a minute) and retries the
 * same symbol, so no symbol's turn is lost; on 401/403 it records the error
 * and waits a minute (or for a SIGHUP with a new key) instead of hammering;
 * on network errors it retries with bounded backoff.  A quote of all zeros
 * (c = 0 and pc = 0: unknown symbol or no data) is counted and skipped, and
 * so is, when skip_unchanged is on, a quote whose t did not move.
 * Produced quotes are Finnhub's JSON plus "symbol" and "fetched_time" (unix
 * seconds), as the Python pipeline this replaces wrote them.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "core/http.h"
#include "core/settings.h"
#include "core/worker_status.h"
#include "ingest/finnhub_messages.h"
#include "ingest/ingest_worker.h"

#define MIN_CALL_SPACING_MS 34 /* never more than 30 calls a second */
#define AUTH_RETRY_MS		60000
#define MAX_BACKOFF_MS		60000
#define HTTP_TIMEOUT_MS		10000L

typedef struct QuoteCall
{
	long http_status; /* 0: no answer */
	StringInfoData body;
	bool too_large; /* the body went over FINNHUB_QUOTE_MAX_BYTES */
	char error[256];
} QuoteCall;

static CURL *curl = NULL;

/* Collect the body; one over the limit ends the transfer (no ERROR in a callback). */
static size_t
collect_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	QuoteCall *call = userdata;

	if (!ss_http_append(&call->body, ptr, size * nmemb, FINNHUB_QUOTE_MAX_BYTES, &call->too_large))
		return 0;
	return size * nmemb;
}

static void
call_quote(const char *symbol, const char *api_key, QuoteCall *call)
{
	char *escaped;
	char *url;
	char *auth;
	struct curl_slist *headers = NULL;
	char curl_error[CURL_ERROR_SIZE] = "";
	CURLcode rc;

	ss_http_ready_handle(&curl);
	escaped = curl_easy_escape(curl, symbol, 0);
	url = psprintf("%s/quote?symbol=%s", ss_settings_finnhub_url, escaped);
	curl_free(escaped);
	auth = psprintf("X-Finnhub-Token: %s", api_key);
	headers = curl_slist_append(headers, auth);
	headers = curl_slist_append(headers, "Accept: application/json");

	resetStringInfo(&call->body);
	call->http_status = 0;
	call->too_large = false;
	call->error[0] = '\0';
	ss_http_set_defaults(curl, curl_error, HTTP_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
	rc = curl_easy_perform(curl);
	curl_slist_free_all(headers);
	/* the header held the key: wipe it */
	memset(auth, 0, strlen(auth));
	pfree(auth);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &call->http_status);
	else if (call->too_large)
		snprintf(call->error, sizeof(call->error),
				 "Finnhub quote for %s is longer than %d bytes; it was dropped", symbol,
				 FINNHUB_QUOTE_MAX_BYTES);
	else
		snprintf(call->error, sizeof(call->error), "Finnhub quote for %s failed: %s", symbol,
				 curl_error[0] ? curl_error : curl_easy_strerror(rc));
	pfree(url);
}

/*
 * Produce one quote unless it is invalid, all zeros or unchanged.
 * `last_t` holds the previous t of this symbol.
 */
static void
handle_quote(const SourceConfig *src, const char *symbol, const StringInfo body, int64 *last_t)
{
	StringInfoData out;
	char reason[256];
	int64 t = 0;

	initStringInfo(&out);
	switch (ss_finnhub_messages_quote_body(body->data, body->len, symbol, (int64) time(NULL), &out,
										   &t, reason, sizeof(reason)))
	{
		case FINNHUB_QUOTE_INVALID:
		{
			char msg[400];

			snprintf(msg, sizeof(msg), "Finnhub quote for %s was dropped: %s", symbol, reason);
			ss_ingest_worker_error(msg);
			break;
		}
		case FINNHUB_QUOTE_ZERO:
			ss_ingest_worker_count(INGEST_ZERO_QUOTES, 1);
			break;
		case FINNHUB_QUOTE_OK:
			if (src->skip_unchanged && t == *last_t)
				ss_ingest_worker_count(INGEST_UNCHANGED_QUOTES, 1);
			else
			{
				*last_t = t;
				ss_ingest_worker_send(symbol, out.data, out.len, 0);
			}
			break;
	}
	pfree(out.data);
}

/* Milliseconds from now until `when`, at least 0. */
static long
ms_until(TimestampTz when)
{
	TimestampTz now = GetCurrentTimestamp();

	return when <= now ? 0 : (long) ((when - now + 999) / 1000);
}

/*
 * A failed call: record why, and return how long to wait before the same
 * symbol is tried again (a minute for a rejected key, else a backoff that
 * doubles from a second, never below the call spacing).
 */
static long
call_failed(const char *symbol, QuoteCall *call, long spacing, long *backoff)
{
	if (call->http_status == 401 || call->http_status == 403)
	{
		ss_ingest_worker_set_state("API key rejected");
		snprintf(call->error, sizeof(call->error),
				 "Finnhub rejected the API key (HTTP %ld); check finnhub_api_key in "
				 "stocks_stream.secrets_file",
				 call->http_status);
		ss_ingest_worker_error(call->error);
		return AUTH_RETRY_MS;
	}
	if (call->http_status == 429)
	{
		ss_ingest_worker_count(INGEST_HTTP_429, 1);
		ss_ingest_worker_set_state("rate limited");
		snprintf(call->error, sizeof(call->error),
				 "Finnhub answered 429 (API limit reached) for %s", symbol);
	}
	else if (call->http_status != 0)
	{
		ss_ingest_worker_set_state("Finnhub error");
		snprintf(call->error, sizeof(call->error), "Finnhub quote for %s returned HTTP %ld", symbol,
				 call->http_status);
	}
	else
		ss_ingest_worker_set_state("network error");
	ss_ingest_worker_error(call->error);
	*backoff = Min(Max(Max(*backoff * 2, 1000), spacing), MAX_BACKOFF_MS);
	return *backoff;
}

void
ss_finnhub_quotes_run(const SourceConfig *src)
{
	long spacing = Max(Max(src->poll_interval_ms / src->nsymbols,
						   (60000 + src->calls_per_minute - 1) / src->calls_per_minute),
					   MIN_CALL_SPACING_MS);
	int64 *last_t = palloc0(sizeof(int64) * src->nsymbols);
	QuoteCall call;
	TimestampTz next_call = GetCurrentTimestamp();
	long backoff = 0;
	int i = 0;

	initStringInfo(&call.body);
	ss_ingest_worker_set_state("running");
	for (;;)
	{
		char *key;
		TimestampTz started;

		while (ms_until(next_call) > 0)
			ss_ingest_worker_wait(ms_until(next_call));
		ss_ingest_worker_wait(0);

		key = ss_ingest_worker_finnhub_key();
		if (key == NULL)
		{
			next_call = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AUTH_RETRY_MS);
			continue;
		}

		started = GetCurrentTimestamp();
		call_quote(src->symbols[i], key, &call);
		memset(key, 0, strlen(key));
		pfree(key);
		ss_ingest_worker_count(INGEST_API_CALLS, 1);

		/* a body over the limit is refused like any bad quote: the next symbol goes on */
		if (call.http_status == 200 || call.too_large)
		{
			backoff = 0;
			ss_ingest_worker_set_state("running");
			if (call.too_large)
				ss_ingest_worker_error(call.error);
			else
				handle_quote(src, src->symbols[i], &call.body, &last_t[i]);
			i = (i + 1) % src->nsymbols;
			next_call = TimestampTzPlusMilliseconds(started, spacing);
			continue;
		}

		/* a failed call: the same symbol is tried again */
		next_call = TimestampTzPlusMilliseconds(
			started, call_failed(src->symbols[i], &call, spacing, &backoff));
	}
}
