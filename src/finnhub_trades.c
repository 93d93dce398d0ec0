/*
 * finnhub_trades.c
 *	  The finnhub_trades source: Finnhub's trade WebSocket over
 *	  libwebsockets, one Kafka message per trade.
 *
 * The worker keeps one connection (one per API key, as Finnhub allows),
 * subscribes to each symbol once connected, answers {"type":"ping"} with
 * {"type":"pong"}, and splits every {"type":"trade","data":[...]} message
 * into one message per trade, keyed by its symbol.  When the connection
 * drops or cannot be made it reconnects with backoff (1 s doubling to a
 * minute) and subscribes again; a rejected handshake (bad key) therefore
 * costs one attempt per backoff period, never a hot loop.
 *
 * libwebsockets runs on this thread: its callbacks fire inside
 * lws_service().  They only collect trades; the main loop then produces
 * them, and while Kafka cannot take more it stops reading the socket.  A
 * 100 ms lws timer bounds how long lws_service() blocks, so signals are
 * seen promptly.  The token is part of the connection path only; it is
 * never in a message we write, and lws log lines are redacted.
 */
#include "postgres.h"

#include <json-c/json.h>
#include <libwebsockets.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ingest_worker.h"
#include "settings.h"
#include "worker_status.h"

#define TICK_US		   (100 * LWS_US_PER_MS)
#define MIN_BACKOFF_MS 1000
#define MAX_BACKOFF_MS 60000
#define MAX_PENDING	   100000

typedef struct PendingTrade
{
	char *symbol;
	char *json;
} PendingTrade;

static const SourceConfig *source = NULL;
static struct lws_context *context = NULL;
static struct lws *conn = NULL;
static bool connecting = false;
static bool ever_connected = false;
static int subscribe_next = 0;
static bool pong_due = false;
static StringInfoData rx;
static lws_sorted_usec_list_t tick;
static TimestampTz reconnect_at = 0;
static int backoff_ms = 0;

static MemoryContext pending_cxt = NULL;
static PendingTrade *pending = NULL;
static int npending = 0;

static void
schedule_reconnect(const char *why)
{
	char msg[400];

	conn = NULL;
	connecting = false;
	backoff_ms = Min(Max(backoff_ms * 2, MIN_BACKOFF_MS), MAX_BACKOFF_MS);
	reconnect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms);
	snprintf(msg, sizeof(msg), "Finnhub trade stream: %s; reconnecting in %d ms", why, backoff_ms);
	ingest_error(msg);
	ingest_set_state("reconnecting");
}

static void
queue_trade(json_object *trade)
{
	json_object *s;

	if (!json_object_is_type(trade, json_type_object) ||
		!json_object_object_get_ex(trade, "s", &s) || !json_object_is_type(s, json_type_string))
	{
		ingest_error("Finnhub trade stream: a trade without a symbol (\"s\") was skipped");
		return;
	}
	pending[npending].symbol = MemoryContextStrdup(pending_cxt, json_object_get_string(s));
	pending[npending].json = MemoryContextStrdup(
		pending_cxt, json_object_to_json_string_ext(trade, JSON_C_TO_STRING_PLAIN |
															   JSON_C_TO_STRING_NOSLASHESCAPE));
	npending++;
}

static void
handle_message(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *msg = json_tokener_parse_ex(tok, text, len);
	json_object *type;
	json_object *data;

	json_tokener_free(tok);
	if (msg == NULL || !json_object_object_get_ex(msg, "type", &type))
		ingest_error(
			"Finnhub trade stream: a message that is not JSON with a \"type\" was skipped");
	else if (strcmp(json_object_get_string(type), "ping") == 0)
	{
		pong_due = true;
		lws_callback_on_writable(conn);
	}
	else if (strcmp(json_object_get_string(type), "trade") == 0 &&
			 json_object_object_get_ex(msg, "data", &data) &&
			 json_object_is_type(data, json_type_array))
	{
		size_t n = json_object_array_length(data);

		for (size_t i = 0; i < n && npending < MAX_PENDING; i++)
			queue_trade(json_object_array_get_idx(data, i));
	}
	else if (strcmp(json_object_get_string(type), "error") == 0)
	{
		char err[300];

		snprintf(err, sizeof(err), "Finnhub trade stream error: %.250s", text);
		ingest_error(err);
	}
	if (msg)
		json_object_put(msg);
}

static void
write_text(struct lws *wsi, const char *text)
{
	size_t len = strlen(text);
	unsigned char *buf = palloc(LWS_PRE + len);

	memcpy(buf + LWS_PRE, text, len);
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len)
		ingest_error("Finnhub trade stream: a write to the socket failed");
	pfree(buf);
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	switch (reason)
	{
		case LWS_CALLBACK_CLIENT_ESTABLISHED:
			connecting = false;
			ever_connected = true;
			subscribe_next = 0;
			backoff_ms = 0;
			ingest_set_state("running");
			lws_callback_on_writable(wsi);
			break;
		case LWS_CALLBACK_CLIENT_WRITEABLE:
			if (pong_due)
			{
				write_text(wsi, "{\"type\":\"pong\"}");
				pong_due = false;
			}
			else if (subscribe_next < source->nsymbols)
			{
				char *sub = psprintf("{\"type\":\"subscribe\",\"symbol\":\"%s\"}",
									 source->symbols[subscribe_next++]);

				write_text(wsi, sub);
				pfree(sub);
			}
			if (pong_due || subscribe_next < source->nsymbols)
				lws_callback_on_writable(wsi);
			break;
		case LWS_CALLBACK_CLIENT_RECEIVE:
			appendBinaryStringInfo(&rx, in, len);
			if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
			{
				handle_message(rx.data, rx.len);
				resetStringInfo(&rx);
			}
			break;
		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		{
			char why[200];

			snprintf(why, sizeof(why), "connection failed: %s",
					 in ? (const char *) in : "unknown error");
			schedule_reconnect(why);
			break;
		}
		case LWS_CALLBACK_CLIENT_CLOSED:
			schedule_reconnect("connection closed");
			break;
		default:
			break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"finnhub-trades", ws_callback, 0, 65536, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Bounds how long lws_service() may block. */
static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(context, 0, &tick, tick_cb, TICK_US);
}

/* lws log lines, with any token redacted. */
static void
lws_log_cb(int level, const char *line)
{
	char buf[512];
	char *tok;

	strlcpy(buf, line, sizeof(buf));
	if ((tok = strstr(buf, "token=")) != NULL)
		strlcpy(tok + 6, "<redacted>", sizeof(buf) - (tok + 6 - buf));
	buf[strcspn(buf, "\n")] = '\0';
	ereport(LOG, (errmsg_internal("libwebsockets: %s", buf)));
}

static void
create_context(void)
{
	struct lws_context_creation_info info;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_cb);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.fd_limit_per_thread = 16;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
		info.client_ssl_ca_filepath = "/etc/ssl/certs/ca-certificates.crt";
	context = lws_create_context(&info);
	if (context == NULL)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("could not create a libwebsockets context")));
	lws_sul_schedule(context, 0, &tick, tick_cb, TICK_US);
}

/*
 * Start a connection.  Its URL, key and path are garbage of this pass,
 * freed with the pass's memory (worker_loop.c), so reconnecting leaks
 * nothing; lws keeps copies of what it needs.
 */
static void
connect_stream(void)
{
	struct lws_client_connect_info ci;
	char *url = pstrdup(ss_finnhub_ws_url);
	const char *prot, *address, *path;
	int port;
	char *key = ingest_finnhub_key();

	if (key == NULL)
	{
		reconnect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAX_BACKOFF_MS);
		return;
	}
	if (lws_parse_uri(url, &prot, &address, &port, &path) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.finnhub_ws_url \"%s\" is not a ws:// or wss:// URL",
							   ss_finnhub_ws_url)));
	if (ever_connected)
		ingest_count(INGEST_RECONNECTS, 1);

	memset(&ci, 0, sizeof(ci));
	ci.context = context;
	ci.address = address;
	ci.port = port;
	ci.host = address;
	ci.origin = address;
	ci.path = psprintf("/%s%stoken=%s", path, strchr(path, '?') ? "&" : "?", key);
	ci.ssl_connection = strcmp(prot, "wss") == 0 ? LCCSCF_USE_SSL : 0;
	ci.local_protocol_name = protocols[0].name;
	ci.pwsi = &conn;
	connecting = true;
	ingest_set_state("connecting");
	if (lws_client_connect_via_info(&ci) == NULL && connecting)
		schedule_reconnect("could not start a connection");
	memset(key, 0, strlen(key));
	memset((char *) ci.path, 0, strlen(ci.path));
}

static void
produce_pending(void)
{
	for (int i = 0; i < npending; i++)
		ingest_send(pending[i].symbol, pending[i].json, strlen(pending[i].json), 0);
	npending = 0;
	MemoryContextReset(pending_cxt);
}

void
ss_run_finnhub_trades(const SourceConfig *src)
{
	source = src;
	initStringInfo(&rx);
	pending_cxt = AllocSetContextCreate(TopMemoryContext, "stocks_stream pending trades",
										ALLOCSET_DEFAULT_SIZES);
	pending = MemoryContextAlloc(TopMemoryContext, sizeof(PendingTrade) * MAX_PENDING);
	create_context();
	reconnect_at = GetCurrentTimestamp();

	for (;;)
	{
		if (conn == NULL && !connecting && GetCurrentTimestamp() >= reconnect_at)
			connect_stream();
		lws_service(context, 0);
		produce_pending();
		ingest_wait(conn == NULL && !connecting ? 100 : 0);
	}
}
