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

#include <libwebsockets.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/settings.h"
#include "core/worker_status.h"
#include "ingest/finnhub_messages.h"
#include "ingest/ingest_worker.h"

#define TICK_US		   (100 * LWS_US_PER_MS)
#define MIN_BACKOFF_MS 1000
#define MAX_BACKOFF_MS 60000
#define MAX_TRADES	   100000 /* taken from one message; those beyond are counted */

/*
 * What the libwebsockets callbacks fill, in memory allocated before they
 * run (they must never ereport): the message being received, at most
 * stocks_stream.ws_max_message bytes, and the trades of complete messages
 * waiting for the main loop to produce them, in an arena of twice that.
 */
typedef struct WsBuffers
{
	char *rx;		   /* the message being received */
	size_t rx_len;	   /* bytes of it so far */
	size_t rx_cap;	   /* ws_max_message */
	char *trades;	   /* "symbol\0json\0" per trade */
	size_t trades_len; /* bytes used */
	size_t trades_cap;
	int ntrades;
	int64 refused; /* messages refused since the worker started */
	int64 dropped; /* trades that could not be taken */
} WsBuffers;

static const SourceConfig *source = NULL;
static struct lws_context *context = NULL;
static struct lws *conn = NULL;
static bool connecting = false;
static bool ever_connected = false;
static int subscribe_next = 0;
static bool pong_due = false;
static WsBuffers ws;
static lws_sorted_usec_list_t tick;
static TimestampTz reconnect_at = 0;
static TimestampTz last_rx = 0;
static int backoff_ms = 0;
static char close_reason[200]; /* why we closed the connection ourselves */

static void
schedule_reconnect(const char *why)
{
	char msg[400];

	conn = NULL;
	connecting = false;
	ws.rx_len = 0; /* a half message never joins the next connection's first */
	backoff_ms = Min(Max(backoff_ms * 2, MIN_BACKOFF_MS), MAX_BACKOFF_MS);
	reconnect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms);
	snprintf(msg, sizeof(msg), "Finnhub trade stream: %s; reconnecting in %d ms", why, backoff_ms);
	ss_ingest_worker_error(msg);
	ss_ingest_worker_set_state("reconnecting");
}

/* Report a refused message or lost trades where operators look (source_status). */
static void
report_refused(const char *why)
{
	char msg[400];

	snprintf(msg, sizeof(msg),
			 "Finnhub trade stream: %s (%lld messages refused and %lld trades dropped so far)", why,
			 (long long) ws.refused, (long long) ws.dropped);
	ss_ingest_worker_error(msg);
}

/* Keep one trade for the main loop; count it dropped when the arena is full. */
static void
keep_trade(const char *symbol, const char *json, size_t len, void *arg)
{
	size_t slen = strlen(symbol);

	if (ws.trades_len + slen + len + 2 > ws.trades_cap)
	{
		ws.dropped++;
		return;
	}
	memcpy(ws.trades + ws.trades_len, symbol, slen + 1);
	ws.trades_len += slen + 1;
	memcpy(ws.trades + ws.trades_len, json, len);
	ws.trades[ws.trades_len + len] = '\0';
	ws.trades_len += len + 1;
	ws.ntrades++;
}

static void
handle_message(const char *text, size_t len)
{
	FinnhubTradeCounts counts = {0};
	char reason[300];

	switch (ss_finnhub_messages_trade(text, len, MAX_TRADES, keep_trade, NULL, &counts, reason,
									  sizeof(reason)))
	{
		case FINNHUB_MSG_PING:
			pong_due = true;
			lws_callback_on_writable(conn);
			break;
		case FINNHUB_MSG_TRADES:
			ws.dropped += counts.dropped + counts.skipped;
			if (counts.dropped > 0 || counts.skipped > 0)
				report_refused(counts.skipped > 0 ? "trades without a symbol (\"s\") were skipped"
												  : "trades over the cap were dropped");
			break;
		case FINNHUB_MSG_INVALID:
			ws.refused++;
			report_refused(reason);
			break;
		case FINNHUB_MSG_ERROR:
			report_refused(reason);
			break;
		case FINNHUB_MSG_OTHER:
			break;
	}
}

/*
 * Collect a fragment; a complete message is handled.  A message over the
 * limit is refused and its connection closed (returns false): its sender
 * is not one to go on reading from.
 */
static bool
receive(struct lws *wsi, const char *in, size_t len)
{
	last_rx = GetCurrentTimestamp();
	if (ws.rx_len + len > ws.rx_cap)
	{
		char why[200];

		ws.refused++;
		ws.rx_len = 0;
		snprintf(why, sizeof(why), "a message over stocks_stream.ws_max_message (%d kB)",
				 ss_settings_ws_max_message_kb);
		report_refused(why);
		strlcpy(close_reason, why, sizeof(close_reason));
		return false;
	}
	memcpy(ws.rx + ws.rx_len, in, len);
	ws.rx_len += len;
	if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
	{
		handle_message(ws.rx, ws.rx_len);
		ws.rx_len = 0;
	}
	return true;
}

/* Send a short text (a pong or a subscribe) from a buffer of our own. */
static void
write_text(struct lws *wsi, const char *text)
{
	unsigned char buf[LWS_PRE + 128];
	size_t len = strlen(text);

	if (len > sizeof(buf) - LWS_PRE)
		return;
	memcpy(buf + LWS_PRE, text, len);
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len)
		ss_ingest_worker_error("Finnhub trade stream: a write to the socket failed");
}

/*
 * libwebsockets calls this inside lws_service().  It only copies bytes
 * into the buffers above and sets flags: nothing in it can ereport.
 */
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
			ws.rx_len = 0;
			last_rx = GetCurrentTimestamp();
			ss_ingest_worker_set_state("running");
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
				char sub[128];

				snprintf(sub, sizeof(sub), "{\"type\":\"subscribe\",\"symbol\":\"%s\"}",
						 source->symbols[subscribe_next++]);
				write_text(wsi, sub);
			}
			if (pong_due || subscribe_next < source->nsymbols)
				lws_callback_on_writable(wsi);
			break;
		case LWS_CALLBACK_CLIENT_RECEIVE:
			if (!receive(wsi, in, len))
				return -1; /* closes the connection; CLIENT_CLOSED follows */
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
		{
			char why[300];

			snprintf(why, sizeof(why), "connection closed%s%s", close_reason[0] ? ": " : "",
					 close_reason);
			close_reason[0] = '\0';
			schedule_reconnect(why);
			break;
		}
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
	ereport(LOG, (errmsg_internal("stocks_stream: libwebsockets: %s", buf)));
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
						errmsg("stocks_stream: could not create a libwebsockets context")));
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
	char *url = pstrdup(ss_settings_finnhub_ws_url);
	const char *prot, *address, *path;
	int port;
	char *key = ss_ingest_worker_finnhub_key();

	if (key == NULL)
	{
		reconnect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAX_BACKOFF_MS);
		return;
	}
	if (lws_parse_uri(url, &prot, &address, &port, &path) != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.finnhub_ws_url \"%s\" is not a ws:// or wss:// URL",
							   ss_settings_finnhub_ws_url)));
	if (ever_connected)
		ss_ingest_worker_count(INGEST_RECONNECTS, 1);

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
	ss_ingest_worker_set_state("connecting");
	if (lws_client_connect_via_info(&ci) == NULL && connecting)
		schedule_reconnect("could not start a connection");
	memset(key, 0, strlen(key));
	memset((char *) ci.path, 0, strlen(ci.path));
}

static void
produce_pending(void)
{
	const char *p = ws.trades;

	for (int i = 0; i < ws.ntrades; i++)
	{
		const char *symbol = p;
		const char *json = symbol + strlen(symbol) + 1;
		size_t len = strlen(json);

		ss_ingest_worker_send(symbol, json, len, 0);
		p = json + len + 1;
	}
	ws.ntrades = 0;
	ws.trades_len = 0;
}

/*
 * A connection that brought nothing (not even Finnhub's pings) for
 * stocks_stream.ws_silence_timeout is taken for half-open: it is closed,
 * and CLIENT_CLOSED makes it again.
 */
static void
check_silence(void)
{
	if (conn == NULL || connecting || ss_settings_ws_silence_timeout_ms <= 0 ||
		!TimestampDifferenceExceeds(last_rx, GetCurrentTimestamp(),
									ss_settings_ws_silence_timeout_ms))
		return;
	strlcpy(close_reason, "nothing received for stocks_stream.ws_silence_timeout",
			sizeof(close_reason));
	ss_ingest_worker_error(
		"Finnhub trade stream: nothing received for stocks_stream.ws_silence_timeout; "
		"closing the connection");
	ss_ingest_worker_set_state("silent");
	lws_set_timeout(conn, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	last_rx = GetCurrentTimestamp();
}

/* The buffers the callbacks fill, sized by the settings of this connection. */
static void
size_buffers(void)
{
	size_t cap = (size_t) ss_settings_ws_max_message_kb * 1024;

	if (ws.rx != NULL && ws.rx_cap == cap)
		return;
	if (ws.rx != NULL)
	{
		pfree(ws.rx);
		pfree(ws.trades);
	}
	ws.rx = MemoryContextAlloc(TopMemoryContext, cap);
	ws.rx_cap = cap;
	ws.trades_cap = 2 * cap + 65536;
	ws.trades = MemoryContextAlloc(TopMemoryContext, ws.trades_cap);
	ws.rx_len = ws.trades_len = 0;
	ws.ntrades = 0;
}

void
ss_finnhub_trades_run(const SourceConfig *src)
{
	source = src;
	create_context();
	reconnect_at = GetCurrentTimestamp();

	for (;;)
	{
		if (conn == NULL && !connecting && GetCurrentTimestamp() >= reconnect_at)
		{
			size_buffers();
			connect_stream();
		}
		lws_service(context, 0);
		produce_pending();
		check_silence();
		ss_ingest_worker_wait(conn == NULL && !connecting ? 100 : 0);
	}
}
