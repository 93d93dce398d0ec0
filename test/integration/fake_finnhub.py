"""A local fake of Finnhub for the tests: REST /quote and the trade WebSocket.

It answers as Finnhub documents:
- GET /api/v1/quote?symbol=S with the token in the X-Finnhub-Token header
  (or a token= query parameter): {"c","d","dp","h","l","o","pc","t"};
  all zeros (d and dp null) for an unknown symbol; 401 {"error":"Invalid API
  key"} for a bad token; 429 {"error":"API limit reached. ..."} past
  limit_per_minute calls in a sliding window, or past 30 calls in a second.
- ws://.../?token=K: a bad token fails the handshake with 401; the client
  sends {"type":"subscribe","symbol":S}; the server sends {"type":"ping"}
  every ping_interval seconds and {"type":"trade","data":[...]} batches
  for subscribed symbols (push_trades(), or every trade_interval seconds).

Hostile answers, for the tests of what the sources survive: quote_bodies
maps a symbol to the raw bytes its /quote answers with; send_raw() sends
any text or bytes frames; send_endless() a message whose fragments never
end; send_half_and_drop() half a message, then the connection is cut;
silent=True makes the server send nothing (no pings) after the subscribe.

Every request and every trade sent is recorded for the tests to compare.
Listens on 127.0.0.1 only, on ports picked by the OS.
"""
import asyncio
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import serve

KNOWN = {"AAPL": 190.0, "MSFT": 420.0, "GOOGL": 170.0, "AMZN": 185.0, "TSLA": 250.0,
         "NVDA": 120.0, "META": 500.0}
LIMIT_BODY = b'{"error":"API limit reached. Please try again later. Remaining Limit: 0"}'


class FakeFinnhub:
    def __init__(self, tokens=("test-token",), limit_per_minute=60, window=60.0,
                 ping_interval=10.0, trades_per_message=3, trade_interval=None, silent=False):
        self.tokens = set(tokens)
        self.limit_per_minute = limit_per_minute
        self.window = window
        self.ping_interval = ping_interval
        self.trades_per_message = trades_per_message
        self.trade_interval = trade_interval
        self.lock = threading.Lock()
        self.requests = []            # dicts: time, symbol, token_in, status
        self.trades_sent = []         # every trade dict sent
        self.pongs = 0
        self.connections_accepted = 0
        self.frozen = set()           # symbols whose t does not move
        self._forced_429 = 0
        self._prices = dict(KNOWN)
        self._calls = {}              # symbol -> quote calls answered
        self._conns = {}              # connection -> set of symbols
        self._rng = random.Random(1)
        self.quote_bodies = {}        # symbol -> raw body bytes (hostile answers)
        self.silent = silent          # no pings, nothing but what a test sends

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self):
        handler = self._http_handler()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run_ws, args=(started,), daemon=True).start()
        started.wait(10)
        return self

    def __exit__(self, *exc):
        self._http.shutdown()
        self._loop.call_soon_threadsafe(self._stop.set_result, None)

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self._http.server_address[1]}/api/v1"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self._ws_port}"

    # --- REST ----------------------------------------------------------------

    def force_429(self, n):
        with self.lock:
            self._forced_429 = n

    def quote_requests(self):
        with self.lock:
            return list(self.requests)

    def _limited(self, token, now):
        recent = [r for r in self.requests if r["token"] == token and r["status"] != 401]
        in_window = sum(1 for r in recent if now - r["time"] < self.window)
        in_second = sum(1 for r in recent if now - r["time"] < 1.0)
        return in_window >= self.limit_per_minute or in_second >= 30

    def _quote(self, symbol):
        if symbol not in self._prices:
            return {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
        n = self._calls[symbol] = self._calls.get(symbol, 0) + 1
        base = KNOWN[symbol]
        price = self._prices[symbol] = round(self._prices[symbol] * (1 + self._rng.gauss(0, 0.002)), 2)
        pc = round(base * 0.99, 2)
        t = 1764000000 + (0 if symbol in self.frozen else n)
        return {"c": price, "d": round(price - pc, 2), "dp": round((price - pc) / pc * 100, 4),
                "h": round(max(price, base * 1.01), 2), "l": round(min(price, base * 0.98), 2),
                "o": base, "pc": pc, "t": t}

    def _answer(self, path, headers):
        url = urlparse(path)
        query = parse_qs(url.query)
        token, token_in = headers.get("X-Finnhub-Token"), "header"
        if token is None and "token" in query:
            token, token_in = query["token"][0], "query"
        symbol = query.get("symbol", [None])[0]
        now = time.time()
        with self.lock:
            if url.path != "/api/v1/quote":
                status, body = 404, b'{"error":"Not found"}'
            elif token not in self.tokens:
                status, body = 401, b'{"error":"Invalid API key"}'
            elif self._forced_429 > 0 or self._limited(token, now):
                self._forced_429 = max(0, self._forced_429 - 1)
                status, body = 429, LIMIT_BODY
            elif not symbol:
                status, body = 422, b'{"error":"Wrong symbol"}'
            elif symbol in self.quote_bodies:
                status, body = 200, self.quote_bodies[symbol]
            else:
                status, body = 200, json.dumps(self._quote(symbol)).encode()
            self.requests.append({"time": now, "symbol": symbol, "token": token,
                                  "token_in": token_in, "path": path, "status": status,
                                  "body": body})
        return status, body

    def _http_handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = fake._answer(self.path, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    # --- WebSocket -------------------------------------------------------------

    def subscriptions(self):
        with self.lock:
            return [set(s) for s in self._conns.values()]

    def push_trades(self, symbol, n):
        """Send one message holding n trades of symbol to its subscribers."""
        return asyncio.run_coroutine_threadsafe(self._push(symbol, n), self._loop).result(10)

    def drop_connections(self):
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10)

    def trades(self, symbol, n):
        """n trades of symbol, recorded as sent (for send_raw)."""
        trades = [self._trade(symbol) for _ in range(n)]
        with self.lock:
            self.trades_sent.extend(trades)
        return trades

    def send_raw(self, frame):
        """Send one frame (str: text, bytes: binary) to every connection."""
        async def send():
            for conn in list(self._conns):
                await conn.send(frame)
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(30)

    def send_endless(self, chunk=65536):
        """Start a text message on every connection whose fragments never end
        (until the connection is closed)."""
        async def fragments():
            while True:
                yield "x" * chunk
                await asyncio.sleep(0)

        async def send():
            for conn in list(self._conns):
                asyncio.ensure_future(self._swallow(conn.send(fragments())))
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def send_half_and_drop(self, text):
        """Send the first half of a text message as a fragment, then cut the connection."""
        async def half():
            yield text[: len(text) // 2]
            await asyncio.sleep(0.5)
            for conn in list(self._conns):
                conn.transport.abort()
            yield text[len(text) // 2:]

        async def send():
            for conn in list(self._conns):
                asyncio.ensure_future(self._swallow(conn.send(half())))
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    @staticmethod
    async def _swallow(coro):
        try:
            await coro
        except Exception:
            pass

    def _trade(self, symbol):
        price = self._prices.get(symbol, 100.0)
        return {"s": symbol, "p": round(price * (1 + self._rng.gauss(0, 0.001)), 2),
                "t": int(time.time() * 1000), "v": self._rng.randint(1, 500), "c": ["1", "12"]}

    async def _push(self, symbol, n):
        trades = [self._trade(symbol) for _ in range(n)]
        msg = json.dumps({"type": "trade", "data": trades})
        sent = 0
        for conn, subs in list(self._conns.items()):
            if symbol in subs:
                await conn.send(msg)
                sent += 1
        if sent:
            with self.lock:
                self.trades_sent.extend(trades)
        return trades if sent else []

    async def _drop(self):
        for conn in list(self._conns):
            conn.transport.abort()

    def _process_request(self, connection, request):
        query = parse_qs(urlparse(request.path).query)
        if query.get("token", [None])[0] not in self.tokens:
            return connection.respond(401, "Invalid API key\n")
        return None

    async def _handle(self, conn):
        with self.lock:
            self.connections_accepted += 1
            self._conns[conn] = set()
        pinger = asyncio.create_task(self._ping(conn))
        try:
            async for raw in conn:
                msg = json.loads(raw)
                with self.lock:
                    if msg.get("type") == "subscribe":
                        self._conns[conn].add(msg["symbol"])
                    elif msg.get("type") == "unsubscribe":
                        self._conns[conn].discard(msg["symbol"])
                    elif msg.get("type") == "pong":
                        self.pongs += 1
        except Exception:
            pass
        finally:
            pinger.cancel()
            with self.lock:
                self._conns.pop(conn, None)

    async def _ping(self, conn):
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.silent:
                continue
            await conn.send('{"type":"ping"}')
            if self.trade_interval:
                for symbol in list(self._conns.get(conn, ())):
                    await self._push(symbol, self.trades_per_message)

    def _run_ws(self, started):
        asyncio.set_event_loop(self._loop)

        async def main():
            self._stop = self._loop.create_future()
            async with serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                             ping_interval=None) as server:
                self._ws_port = server.sockets[0].getsockname()[1]
                started.set()
                await self._stop

        self._loop.run_until_complete(main())
