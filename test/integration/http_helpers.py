"""HTTP and gold helpers for the PostgREST, nginx and browser tests.

The tests talk to the PostgREST and nginx that `scripts/stack start` runs
(POSTGREST_URL, WEB_URL).  Market data they check is written straight into
silver under symbols of their own, made dirty for refresh_gold() and removed
afterwards, so other tests' data never changes their expected rows.
"""
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import psycopg

from stack_support import ROOT, sql, wait_until

POSTGREST_URL = os.environ.get("POSTGREST_URL", "http://127.0.0.1:23000")
WEB_URL = os.environ.get("WEB_URL", "http://127.0.0.1:28080")


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


def http(method, url, headers=None, data=None, base=None):
    """One HTTP request; returns the answer whatever its status."""
    if not url.startswith("http"):
        url = (base or POSTGREST_URL) + url
    body = data.encode() if isinstance(data, str) else data
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def get(url, **kw):
    return http("GET", url, **kw)


def api_examples():
    """(method, URL, body) of every request scripts/api-examples prints, for the data present now."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "api-examples"), "--list"], check=True,
                         capture_output=True, text=True, env=dict(os.environ, POSTGREST_URL=POSTGREST_URL)).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


def new_symbol(prefix="H"):
    return prefix + uuid.uuid4().hex[:8].upper()


def insert_trades(rows, topic):
    """rows: (symbol, ISO time, price, volume); makes partitions and dirty minutes."""
    with psycopg.connect(autocommit=False) as conn:
        for d in sorted({str(t)[:10] for _, t, _, _ in rows}):
            conn.execute("SELECT stocks_stream.ensure_day_partition(%s)", [d])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition,"
                " source_offset) VALUES (%s, %s, %s, %s, %s, 0, %s)",
                [(s, t, p, v, topic, i) for i, (s, t, p, v) in enumerate(rows)])
            cur.executemany(
                "INSERT INTO stocks_stream.gold_dirty VALUES (%s, date_trunc('minute', %s::timestamptz))"
                " ON CONFLICT DO NOTHING", [(s, t) for s, t, _, _ in rows])


def insert_quotes(rows, topic):
    """rows: (symbol, ISO time, price, change, change_pct)."""
    with psycopg.connect(autocommit=False) as conn:
        for d in sorted({str(t)[:10] for _, t, _, _, _ in rows}):
            conn.execute("SELECT stocks_stream.ensure_day_partition(%s)", [d])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO stocks_stream.quotes (symbol, quote_time, price, change, change_pct, day_high, day_low,"
                " day_open, prev_close, source_topic, source_partition, source_offset)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s)",
                [(s, t, p, c, pct, p * 1.01, p * 0.99, p, p - c, topic, i)
                 for i, (s, t, p, c, pct) in enumerate(rows)])
            cur.executemany(
                "INSERT INTO stocks_stream.gold_dirty VALUES (%s, date_trunc('minute', %s::timestamptz))"
                " ON CONFLICT DO NOTHING", [(s, t) for s, t, _, _, _ in rows])


def refresh_gold(symbols):
    """refresh_gold() until no minute of the symbols waits (another session's
    refresh may hold some of them until it commits)."""
    def clean():
        sql("SELECT stocks_stream.refresh_gold()")
        waiting = sql("SELECT count(*) FROM stocks_stream.gold_dirty d WHERE d.symbol = ANY(%s)"
                      " AND NOT EXISTS (SELECT 1 FROM stocks_stream.gold_errors e WHERE e.symbol = d.symbol)",
                      [list(symbols)])[0][0]
        return waiting == 0
    wait_until(clean, 120, f"gold refreshed for {symbols}")


def drop_symbols(symbols, topic):
    s = list(symbols)
    for stmt in ("DELETE FROM stocks_stream.trades WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.quotes WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.gold_dirty WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.gold_errors WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.candles WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.daily_summary WHERE symbol = ANY(%s)",
                 "DELETE FROM stocks_stream.latest_quotes WHERE symbol = ANY(%s)"):
        sql(stmt, [s])
