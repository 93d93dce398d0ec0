"""The api schema over real HTTP: the PostgREST (and nginx) of the local stack.

Rows checked exactly are written into silver under this module's own
symbols, refreshed into gold by refresh_gold(), and removed afterwards.
"""
import datetime as dt
import json
import os
import random
import re
import uuid
from zoneinfo import ZoneInfo

import psycopg
import pytest

from stack_support import ROOT, sql, wait_until
from http_helpers import (POSTGREST_URL, WEB_URL, api_examples, drop_symbols, get, http, insert_quotes, insert_trades,
                          new_symbol, refresh_gold)

NY = ZoneInfo("America/New_York")
LONG_FLOAT = re.compile(rb"\d\.\d{9,}")


@pytest.fixture(scope="module")
def market():
    topic = "http_" + uuid.uuid4().hex[:8]
    m = {"US": new_symbol("HU"), "CR": "BINANCE:" + new_symbol("HC") + "USDT", "SUB": new_symbol("HS")}
    us, cr, sub = m["US"], m["CR"], m["SUB"]
    insert_trades([
        (us, "2026-03-09T14:30:05Z", 100.1, 10), (us, "2026-03-09T14:30:40Z", 100.2, 20),
        (us, "2026-03-09T14:31:10Z", 100.3, 5), (us, "2026-03-09T14:35:00Z", 99.9, 15),
        # 23:30 in New York: the US symbol's 9 March, the 10th in UTC
        (us, "2026-03-10T03:30:00Z", 101.0, 1),
        (cr, "2026-03-09T23:30:00Z", 0.1 + 0.2, 0.1), (cr, "2026-03-10T00:30:00Z", 0.35, 0.2),
    ], topic)
    insert_quotes([(sub, "2026-03-09T14:30:00Z", 0.000123456, -0.22999999999998977, -1.23456),
                   (sub, "2026-03-09T14:29:00Z", 0.0002, 0.1, 1.0)], topic)
    refresh_gold(m.values())
    yield m
    drop_symbols(m.values(), topic)


def rows(path, **kw):
    a = get(path, **kw)
    assert a.status == 200, (path, a.status, a.text)
    return a.json()


# --- OpenAPI -------------------------------------------------------------------

def test_openapi_carries_every_view_and_column_comment():
    doc = rows("/")
    views = sql("SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'api' AND c.relkind = 'v'")
    assert {v for v, _ in views} >= {"candles", "daily_summary", "top_movers", "latest_quotes", "pipeline_health",
                                     "daily_candles", "symbol_volatility", "exchanges", "symbols"}
    for view, comment in views:
        definition = doc["definitions"][view]
        assert definition["description"] == comment
        for column, col_comment in sql(
                "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0", [f"api.{view}"]):
            assert col_comment, f"api.{view}.{column} has no comment"
            assert definition["properties"][column]["description"].startswith(col_comment)
    assert "/rpc/candle_series" in doc["paths"]
    assert doc["paths"]["/rpc/candle_series"]["get"]["summary"].startswith("Candles of one symbol")


# --- every view, its rows --------------------------------------------------------

def test_candles_rows(market):
    us = market["US"]
    assert rows(f"/candles?symbol=eq.{us}&interval=eq.1m&order=bucket_start") == [
        {"symbol": us, "interval": "1m", "bucket_start": "2026-03-09T14:30:00+00:00", "open": 100.1, "high": 100.2,
         "low": 100.1, "close": 100.2, "volume": 30, "vwap": 100.17, "sample_count": 2},
        {"symbol": us, "interval": "1m", "bucket_start": "2026-03-09T14:31:00+00:00", "open": 100.3, "high": 100.3,
         "low": 100.3, "close": 100.3, "volume": 5, "vwap": 100.3, "sample_count": 1},
        {"symbol": us, "interval": "1m", "bucket_start": "2026-03-09T14:35:00+00:00", "open": 99.9, "high": 99.9,
         "low": 99.9, "close": 99.9, "volume": 15, "vwap": 99.9, "sample_count": 1},
        {"symbol": us, "interval": "1m", "bucket_start": "2026-03-10T03:30:00+00:00", "open": 101, "high": 101,
         "low": 101, "close": 101, "volume": 1, "vwap": 101, "sample_count": 1},
    ]


@pytest.mark.parametrize("key, expected", [
    # New York day of 9 March 2026 (EDT, UTC-4) holds the trade at 03:30 UTC on the 10th
    ("US", [{"day": "2026-03-09", "open": 100.1, "close": 101, "high": 101, "low": 99.9, "change": 0.9,
             "change_pct": 0.9, "volume": 51}]),
    # crypto: UTC days
    ("CR", [{"day": "2026-03-09", "open": 0.3, "close": 0.3, "high": 0.3, "low": 0.3, "change": 0,
             "change_pct": 0, "volume": 0.1},
            {"day": "2026-03-10", "open": 0.35, "close": 0.35, "high": 0.35, "low": 0.35, "change": 0,
             "change_pct": 0, "volume": 0.2}]),
])
def test_daily_summary_rows_on_exchange_days(market, key, expected):
    got = rows(f"/daily_summary?symbol=eq.{market[key]}&order=day&select=day,open,close,high,low,change,"
               "change_pct,volume")
    assert got == expected


def test_daily_candles_at_exchange_midnight(market):
    assert rows(f"/candles?symbol=eq.{market['US']}&interval=eq.1d&select=bucket_start,sample_count") == [
        {"bucket_start": "2026-03-09T04:00:00+00:00", "sample_count": 5}]
    assert rows(f"/candles?symbol=eq.{market['CR']}&interval=eq.1d&select=bucket_start&order=bucket_start") == [
        {"bucket_start": "2026-03-09T00:00:00+00:00"}, {"bucket_start": "2026-03-10T00:00:00+00:00"}]


def test_latest_quotes_rows_rounded(market):
    assert rows(f"/latest_quotes?symbol=eq.{market['SUB']}") == [
        {"symbol": market["SUB"], "quote_time": "2026-03-09T14:30:00+00:00", "price": 0.0001235, "change": -0.23,
         "change_pct": -1.23, "day_high": 0.0001247, "day_low": 0.0001222, "day_open": 0.0001235,
         "prev_close": 0.2301}]


def test_daily_candles_and_symbol_volatility_marts(market):
    assert rows(f"/daily_candles?symbol=eq.{market['CR']}&order=day") == [
        {"symbol": market["CR"], "day": "2026-03-09", "open": 0.3, "high": 0.3, "low": 0.3, "close": 0.3,
         "volume": 0.1},
        {"symbol": market["CR"], "day": "2026-03-10", "open": 0.35, "high": 0.35, "low": 0.35, "close": 0.35,
         "volume": 0.2}]
    vol = {r["symbol"]: r for r in rows("/symbol_volatility")}
    # one daily return (0.35 / 0.3 - 1): no sample standard deviation yet
    assert vol[market["CR"]] == {"symbol": market["CR"], "return_days": 1, "volatility": None,
                                 "relative_volatility": None}


def test_exchanges_and_symbols(market):
    assert rows("/exchanges?select=exchange,time_zone&order=exchange") == [
        {"exchange": "CRYPTO", "time_zone": "UTC"}, {"exchange": "US", "time_zone": "America/New_York"}]
    got = rows(f"/symbols?symbol=in.({market['US']},{market['CR']})&order=symbol")
    assert sorted(got, key=lambda r: r["symbol"]) == sorted([
        {"symbol": market["CR"], "exchange": "CRYPTO", "time_zone": "UTC"},
        {"symbol": market["US"], "exchange": "US", "time_zone": "America/New_York"}], key=lambda r: r["symbol"])


@pytest.mark.parametrize("view", ["candles", "daily_summary", "top_movers", "latest_quotes", "pipeline_health",
                                  "daily_candles", "symbol_volatility", "exchanges", "symbols"])
def test_every_view_answers_what_the_anonymous_role_reads(market, view):
    got = rows(f"/{view}?limit=50")
    with_anon = sql(f"SELECT count(*) FROM (SELECT 1 FROM api.{view} LIMIT 50) x")[0][0]
    assert len(got) == with_anon
    assert not LONG_FLOAT.search(json.dumps(got).encode()), "unrounded number in the answer"


def test_top_movers_rank_the_latest_day():
    got = rows("/top_movers?order=gain_rank")
    if got:
        assert len({r["day"] for r in got}) == 1
        assert [r["gain_rank"] for r in got] == sorted(r["gain_rank"] for r in got)
        assert got[0]["gain_rank"] == 1


# --- numbers --------------------------------------------------------------------

def test_numbers_rounded_as_quoted(market):
    a = get(f"/candles?symbol=eq.{market['CR']}&interval=eq.1m")
    assert a.status == 200
    assert b'"open":0.3,' in a.body.replace(b" ", b"")
    assert not LONG_FLOAT.search(a.body)


# --- filters, order, paging, count, CSV ---------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("interval=eq.1m&order=bucket_start.desc&limit=2&select=bucket_start",
     ["2026-03-10T03:30:00+00:00", "2026-03-09T14:35:00+00:00"]),
    ("interval=eq.1m&order=bucket_start&limit=2&offset=1&select=bucket_start",
     ["2026-03-09T14:31:00+00:00", "2026-03-09T14:35:00+00:00"]),
    ("interval=eq.1m&close=gt.100&order=close.desc&select=bucket_start",
     ["2026-03-10T03:30:00+00:00", "2026-03-09T14:31:00+00:00", "2026-03-09T14:30:00+00:00"]),
    ("interval=in.(1h,5m)&bucket_start=gte.2026-03-09T14:00:00Z&bucket_start=lt.2026-03-09T14:35:00Z"
     "&order=interval&select=bucket_start", ["2026-03-09T14:00:00+00:00", "2026-03-09T14:30:00+00:00"]),
])
def test_filters_order_limit_offset(market, query, expected):
    got = rows(f"/candles?symbol=eq.{market['US']}&{query}")
    assert [r["bucket_start"] for r in got] == expected


def test_exact_count(market):
    a = get(f"/candles?symbol=eq.{market['US']}&interval=eq.1m&limit=1", headers={"Prefer": "count=exact"})
    assert a.status in (200, 206)
    assert a.headers["content-range"] == "0-0/4"


def test_csv(market):
    a = get(f"/candles?symbol=eq.{market['US']}&interval=eq.1d&select=symbol,bucket_start,open,close,volume",
            headers={"Accept": "text/csv"})
    assert a.status == 200 and a.headers["content-type"].startswith("text/csv")
    assert a.text.splitlines() == ["symbol,bucket_start,open,close,volume",
                                   f"{market['US']},\"2026-03-09 04:00:00+00\",100.10,101.00,51"]


# --- refused ---------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body", [
    ("POST", "/candles", '{"symbol":"X"}'), ("PATCH", "/candles?symbol=eq.X", '{"symbol":"Y"}'),
    ("DELETE", "/candles?symbol=eq.X", None), ("POST", "/daily_summary", '{"symbol":"X"}'),
    ("PATCH", "/latest_quotes?symbol=eq.X", '{"symbol":"Y"}'), ("POST", "/exchanges", '{"exchange":"X"}'),
    ("DELETE", "/exchanges", None),
])
def test_writes_are_refused(method, path, body):
    a = http(method, path, data=body, headers={"Content-Type": "application/json"})
    assert a.status == 401, a.text
    assert a.json()["code"] == "42501"
    assert sql("SELECT count(*) FROM stocks_stream.exchanges WHERE exchange = 'X'")[0][0] == 0


@pytest.mark.parametrize("method, path", [
    ("DELETE", "/pipeline_health"), ("DELETE", "/symbols"), ("POST", "/top_movers"), ("PATCH", "/daily_candles"),
])
def test_writes_to_views_that_cannot_change_are_refused(method, path):
    a = http(method, path, data=None if method == "DELETE" else '{"symbol":"X"}',
             headers={"Content-Type": "application/json"})
    assert a.status in (401, 500), a.text
    assert a.json()["code"] in ("42501", "55000")


@pytest.mark.parametrize("path, headers, status", [
    ("/gold_dirty", {}, 404), ("/quotes", {}, 404), ("/manifest", {}, 404), ("/pipelines", {}, 404),
    ("/gold_errors", {}, 404), ("/rpc/refresh_gold", {}, 404), ("/rpc/load_bronze", {}, 404),
    ("/rpc/current_setting?setting_name=stocks_stream.s3_secret_key", {}, 404),
    ("/candles", {"Accept-Profile": "stocks_stream"}, 406), ("/pg_settings", {"Accept-Profile": "pg_catalog"}, 406),
])
def test_outside_api_cannot_be_reached(path, headers, status):
    a = get(path, headers=headers)
    assert a.status == status, a.text


def test_secret_settings_never_appear(market):
    secret = os.environ["S3_SECRET_KEY"].encode()
    for path in ["/", "/pipeline_health", "/candles?limit=100", "/latest_quotes", "/exchanges",
                 "/rpc/candle_series?symbol=X&interval=1m&start_time=2026-03-09T00:00Z&end_time=2026-03-09T01:00Z"]:
        a = get(path)
        assert a.status == 200 and secret not in a.body, path


# --- limits ----------------------------------------------------------------------

@pytest.fixture
def test_views():
    """Views made for one test (a slow one, a big one), dropped afterwards."""
    made = []

    def make(body):
        name = "t_" + uuid.uuid4().hex[:8]
        sql(f"CREATE VIEW api.{name} AS {body}")
        sql(f"GRANT SELECT ON api.{name} TO stocks_stream_anon")
        sql("NOTIFY pgrst, 'reload schema'")
        made.append(name)
        wait_until(lambda: get(f"/{name}?limit=0").status != 404, 60, f"PostgREST to see api.{name}")
        return name

    yield make
    for name in made:
        sql(f"DROP VIEW IF EXISTS api.{name}")
    sql("NOTIFY pgrst, 'reload schema'")


def test_statement_timeout_cuts_a_slow_query(test_views):
    name = test_views("SELECT pg_sleep(30) IS NULL AS slept")
    a = get(f"/{name}")
    assert a.status == 500
    assert a.json()["code"] == "57014"
    assert a.json()["message"] == "canceling statement due to statement timeout"


def test_db_max_rows_caps_a_response(test_views):
    name = test_views("SELECT g FROM generate_series(1, 25000) g")
    a = get(f"/{name}", headers={"Prefer": "count=exact"})
    assert len(a.json()) == 10000
    assert a.headers["content-range"] == "0-9999/25000"


@pytest.mark.parametrize("path, code", [
    ("/candles?open=xx.1", "PGRST100"),
    ("/candles?bucket_start=gte.not-a-time", "22007"),
    ("/candles?order=nosuchcolumn", "42703"),
    ("/rpc/candle_series?symbol=X&interval=7m&start_time=2026-03-09T00:00Z&end_time=2026-03-10T00:00Z", "22023"),
])
def test_bad_request_gives_400_with_postgrest_error_body(path, code):
    a = get(path)
    assert a.status == 400, a.text
    body = a.json()
    assert set(body) == {"code", "details", "hint", "message"}
    assert body["code"] == code


# --- /rpc/candle_series ----------------------------------------------------------------

def test_gap_filled_minutes(market):
    us = market["US"]
    got = rows(f"/rpc/candle_series?symbol={us}&interval=1m&start_time=2026-03-09T14:30:00Z"
               "&end_time=2026-03-09T14:37:00Z")
    assert [(r["bucket_start"][11:16], r["open"], r["high"], r["low"], r["close"], r["volume"], r["filled"])
            for r in got] == [
        ("14:30", 100.1, 100.2, 100.1, 100.2, 30, False),
        ("14:31", 100.3, 100.3, 100.3, 100.3, 5, False),
        ("14:32", 100.3, 100.3, 100.3, 100.3, 0, True),
        ("14:33", 100.3, 100.3, 100.3, 100.3, 0, True),
        ("14:34", 100.3, 100.3, 100.3, 100.3, 0, True),
        ("14:35", 99.9, 99.9, 99.9, 99.9, 15, False),
        ("14:36", 99.9, 99.9, 99.9, 99.9, 0, True),
    ]
    unfilled = rows(f"/rpc/candle_series?symbol={us}&interval=1m&start_time=2026-03-09T14:30:00Z"
                    "&end_time=2026-03-09T14:37:00Z&fill_gaps=false")
    assert [r["bucket_start"][11:16] for r in unfilled] == ["14:30", "14:31", "14:35"]


@pytest.fixture(scope="module")
def random_walk():
    """Two weeks of trades (and quote-only stretches) of one symbol around
    the March 2026 DST change, prices in quarters, whole volumes."""
    topic = "http_" + uuid.uuid4().hex[:8]
    sym = new_symbol("HR")
    rnd = random.Random(12)
    t = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.timezone.utc)
    price, trades, quotes = 100.0, [], []
    while t < dt.datetime(2026, 3, 16, tzinfo=dt.timezone.utc):
        price = max(1.0, price + rnd.choice([-0.5, -0.25, 0, 0.25, 0.5]))
        if t.hour % 6 == 5:       # an hour of quotes only, every six hours
            quotes.append((sym, t.isoformat(), price, 0.5, 0.5))
        else:
            trades.append((sym, t.isoformat(), price, rnd.randint(1, 500)))
        t += dt.timedelta(minutes=rnd.randint(3, 40), seconds=rnd.randint(0, 59))
    insert_trades(trades, topic)
    insert_quotes(quotes, topic)
    refresh_gold([sym])
    yield sym
    drop_symbols([sym], topic)


RECOMPUTED = """
WITH samples AS (
    SELECT {bucket} AS parent, trade_time AS at, source_offset AS o, price, volume, true AS trade
      FROM stocks_stream.trades WHERE symbol = %(s)s
    UNION ALL
    SELECT {bucket_q}, quote_time, source_offset, price, NULL, false
      FROM stocks_stream.quotes WHERE symbol = %(s)s),
chosen AS (
    SELECT *, bool_or(trade) OVER (PARTITION BY parent) AS has_trades FROM samples)
SELECT parent,
       stocks_stream.display_price((array_agg(price ORDER BY at, o))[1]) AS open,
       stocks_stream.display_price(max(price)) AS high, stocks_stream.display_price(min(price)) AS low,
       stocks_stream.display_price((array_agg(price ORDER BY at DESC, o DESC))[1]) AS close,
       stocks_stream.display_amount(sum(volume)) AS volume,
       sum(price * volume) / nullif(sum(volume), 0) AS vwap, count(*) AS n
  FROM chosen WHERE trade = has_trades
 GROUP BY parent ORDER BY parent
"""


@pytest.mark.parametrize("interval, bucket", [
    ("15m", "date_bin('15 minutes', {t}, timestamptz '2000-01-01 00:00+00')"),
    ("30m", "date_bin('30 minutes', {t}, timestamptz '2000-01-01 00:00+00')"),
    ("4h", "date_bin('4 hours', {t}, timestamptz '2000-01-01 00:00+00')"),
    ("1w", "date_trunc('week', {t} AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York'"),
    ("1d", "date_trunc('day', {t} AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York'"),
])
def test_derived_interval_equals_recomputation_from_silver(random_walk, interval, bucket):
    expected = sql(RECOMPUTED.format(bucket=bucket.format(t="trade_time"), bucket_q=bucket.format(t="quote_time")),
                   {"s": random_walk})
    got = rows(f"/rpc/candle_series?symbol={random_walk}&interval={interval}&start_time=2026-02-23T00:00:00Z"
               "&end_time=2026-03-17T00:00:00Z&fill_gaps=false")
    assert len(got) == len(expected) > 0
    for g, (parent, o, h, lo, c, v, vwap, n) in zip(got, expected):
        assert dt.datetime.fromisoformat(g["bucket_start"]) == parent
        assert (g["open"], g["high"], g["low"], g["close"], g["sample_count"]) == (float(o), float(h), float(lo),
                                                                                  float(c), n)
        assert g["volume"] == (float(v) if v is not None else None)
        assert (g["vwap"] is None) == (vwap is None)
        if vwap is not None:
            assert abs(g["vwap"] - vwap) <= 0.005 + 1e-9


# --- exchange days across DST ---------------------------------------------------------------

@pytest.mark.parametrize("kind, transition", [
    ("US", "2026-03-08T07:00:00+00:00"), ("US", "2026-11-01T06:00:00+00:00"),
    ("CRYPTO", "2026-03-08T07:00:00+00:00"), ("CRYPTO", "2026-11-01T06:00:00+00:00"),
])
def test_exchange_days_follow_dst(kind, transition):
    """Property: for random trade times within 40 hours of a DST change (and
    a second either side of each local midnight), every trade counts in the
    daily summary of its exchange-local date, and each 1d candle starts at
    that date's local midnight."""
    topic = "http_" + uuid.uuid4().hex[:8]
    sym = new_symbol("HD") if kind == "US" else "KRAKEN:" + new_symbol("HD")
    zone = NY if kind == "US" else dt.timezone.utc
    center = dt.datetime.fromisoformat(transition)
    rnd = random.Random(transition + kind)
    times = {center + dt.timedelta(seconds=rnd.randint(-40 * 3600, 40 * 3600)) for _ in range(300)}
    local_center = center.astimezone(zone).date()
    for d in (local_center - dt.timedelta(days=1), local_center, local_center + dt.timedelta(days=1)):
        midnight = dt.datetime.combine(d, dt.time(0), tzinfo=zone).astimezone(dt.timezone.utc)
        times |= {midnight - dt.timedelta(seconds=1), midnight}
    try:
        insert_trades([(sym, t.isoformat(), 10.0, 1) for t in sorted(times)], topic)
        refresh_gold([sym])
        per_day = {}
        for t in times:
            per_day[t.astimezone(zone).date()] = per_day.get(t.astimezone(zone).date(), 0) + 1
        got = sql("SELECT d.day, c.bucket_start, c.sample_count FROM stocks_stream.daily_summary d"
                  " JOIN stocks_stream.candles c ON c.symbol = d.symbol AND c.interval = '1d'"
                  "  AND (c.bucket_start AT TIME ZONE %s)::date = d.day WHERE d.symbol = %s ORDER BY d.day",
                  ["America/New_York" if kind == "US" else "UTC", sym])
        assert {day: n for day, _, n in got} == per_day
        for day, start, _ in got:
            assert start == dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    finally:
        drop_symbols([sym], topic)


# --- refresh_gold() goes on past a bucket it cannot compute ---------------------------------

def test_refresh_gold_skips_a_bucket_that_overflows_and_retries_it():
    topic = "http_" + uuid.uuid4().hex[:8]
    bad, good = new_symbol("HX"), new_symbol("HG")
    try:
        insert_trades([(bad, "2026-03-11T15:00:10Z", 1e300, 1e300), (bad, "2026-03-11T15:05:00Z", 10.0, 1),
                       (good, "2026-03-11T15:00:20Z", 20.0, 2)], topic)
        refresh_gold([bad, good])
        assert sql("SELECT interval, close, volume FROM stocks_stream.candles WHERE symbol = %s ORDER BY interval",
                   [good]) == [("1d", 20.0, 2.0), ("1h", 20.0, 2.0), ("1m", 20.0, 2.0), ("5m", 20.0, 2.0)]
        assert sql("SELECT day FROM stocks_stream.daily_summary WHERE symbol = %s", [good]) == [
            (dt.date(2026, 3, 11),)]
        # the bad symbol's 15:05 minute still computes; every bucket holding the 1e300 trade is in error
        assert sql("SELECT interval, bucket_start FROM stocks_stream.candles WHERE symbol = %s ORDER BY interval",
                   [bad]) == [("1m", dt.datetime(2026, 3, 11, 15, 5, tzinfo=dt.timezone.utc)),
                              ("5m", dt.datetime(2026, 3, 11, 15, 5, tzinfo=dt.timezone.utc))]
        errors = sql("SELECT target, sqlstate, error FROM stocks_stream.gold_errors WHERE symbol = %s"
                     " ORDER BY target", [bad])
        assert [e[0] for e in errors] == ["1d", "1h", "1m", "5m"]
        assert all(e[1] == "22003" and "overflow" in e[2] for e in errors)
        # kept dirty, so the next refresh retries (and warns again)
        assert sql("SELECT minute FROM stocks_stream.gold_dirty WHERE symbol = %s ORDER BY minute", [bad]) == [
            (dt.datetime(2026, 3, 11, 15, 0, tzinfo=dt.timezone.utc),),
            (dt.datetime(2026, 3, 11, 15, 5, tzinfo=dt.timezone.utc),)]
        with psycopg.connect(autocommit=True) as conn:
            warnings = []
            conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
            conn.execute("SELECT stocks_stream.refresh_gold()")
        assert any(bad in w and "overflow" in w for w in warnings) or \
            sql("SELECT max(attempts) FROM stocks_stream.gold_errors WHERE symbol = %s", [bad])[0][0] >= 2
        # corrected silver: the next refresh computes it and clears the errors
        sql("DELETE FROM stocks_stream.trades WHERE symbol = %s AND price > 1e200", [bad])
        def cleared():
            sql("SELECT stocks_stream.refresh_gold()")
            return sql("SELECT (SELECT count(*) FROM stocks_stream.gold_errors WHERE symbol = %(s)s)"
                       " + (SELECT count(*) FROM stocks_stream.gold_dirty WHERE symbol = %(s)s)", {"s": bad})[0][0] == 0
        wait_until(cleared, 60, "the corrected bucket refreshed")
        assert sql("SELECT interval, close FROM stocks_stream.candles WHERE symbol = %s ORDER BY interval", [bad]) == [
            ("1d", 10.0), ("1h", 10.0), ("1m", 10.0), ("5m", 10.0)]
    finally:
        drop_symbols([bad, good], topic)


# --- nginx ----------------------------------------------------------------------------

def test_nginx_serves_the_page_and_proxies_the_api(market):
    page = get(WEB_URL + "/")
    assert page.status == 200 and b'id="chart"' in page.body
    assert get(WEB_URL + "/lib/lightweight-charts.js").body.startswith(b"/*!")
    assert get(WEB_URL + f"/api/candles?symbol=eq.{market['US']}&interval=eq.1d&select=sample_count").json() == [
        {"sample_count": 5}]


def test_nginx_rate_limits_the_api():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: get(WEB_URL + "/api/exchanges?select=exchange").status, range(300)))
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0 and statuses.count(200) >= 40


# --- the performance contract: plans with a few million silver rows ----------------------

PERF_DAYS = ["2021-01-04", "2021-01-05"]


@pytest.fixture(scope="module")
def loaded_silver():
    """Two days of 3 million silver rows (2M quotes, 1M trades) of 20 symbols,
    their 1m candles, and their latest quotes refreshed; removed afterwards."""
    tag = uuid.uuid4().hex[:4].upper()
    symbols = [f"HP{tag}{i:02d}" for i in range(20)]
    for d in PERF_DAYS:
        assert not sql("SELECT to_regclass(%s)", [f"stocks_stream.quotes_{d.replace('-', '')}"])[0][0]
        sql("SELECT stocks_stream.ensure_day_partition(%s)", [d])
    try:
        with psycopg.connect(autocommit=True) as conn:
            conn.execute(
                "INSERT INTO stocks_stream.quotes (symbol, quote_time, price, change, change_pct, day_high, day_low,"
                " day_open, prev_close, source_topic, source_partition, source_offset)"
                " SELECT (%(s)s::text[])[1 + g %% 20], timestamptz '2021-01-04 00:00+00' + (g / 20) * interval '1728 ms',"
                "  100 + (g %% 997) / 100.0, 0.5, 0.5, 120, 80, 100, 99.5, 'perf', 0, g"
                " FROM generate_series(0, 1999999) g", {"s": symbols})
            conn.execute(
                "INSERT INTO stocks_stream.trades (symbol, trade_time, price, volume, source_topic, source_partition,"
                " source_offset) SELECT (%(s)s::text[])[1 + g %% 20], timestamptz '2021-01-04 00:00+00' + (g / 20) * interval"
                " '3456 ms', 100 + (g %% 991) / 100.0, 1 + g %% 50, 'perf', 1, g FROM generate_series(0, 999999) g",
                {"s": symbols})
            conn.execute(
                "INSERT INTO stocks_stream.candles (symbol, interval, bucket_start, open, high, low, close, volume,"
                " vwap, sample_count, built_from)"
                " SELECT s, '1m', m, 100, 101, 99, 100.5, 1000, 100.2, 20, 'trades'"
                " FROM unnest(%(s)s::text[]) s, generate_series(timestamptz '2021-01-04 00:00+00',"
                "  timestamptz '2021-01-05 23:59+00', interval '1 minute') m", {"s": symbols})
            conn.execute("INSERT INTO stocks_stream.gold_dirty SELECT s, timestamptz '2021-01-05 23:59+00'"
                         " FROM unnest(%(s)s::text[]) s", {"s": symbols})
            # and a manifest of 300,000 objects (loaded), as months of archiving leave
            conn.execute(
                "INSERT INTO stocks_stream.manifest (pipeline, bucket, object_key, topic, partition, first_offset,"
                " last_offset, message_count, bytes, etag, compressed, loaded_at)"
                " SELECT %(p)s, 'perf', 'perf/' || g, 'perf', g %% 4, g, g, 1, 100, 'e', false, now()"
                " FROM generate_series(0, 299999) g", {"p": "perf_" + tag})
            conn.execute("ANALYZE stocks_stream.quotes, stocks_stream.trades, stocks_stream.candles,"
                         " stocks_stream.manifest")
        refresh_gold(symbols)
        # and ten years of their daily history (gold: a row per symbol and
        # day), as a long-running install holds: with a few rows the
        # planner rightly reads daily_summary whole, which tells nothing
        with psycopg.connect(autocommit=True) as conn:
            conn.execute(
                "INSERT INTO stocks_stream.daily_summary (symbol, day, open, close, high, low, change, change_pct,"
                " volatility, volume) SELECT s, d::date, 100, 101, 102, 99, 1, 1, 0.01, 1000"
                " FROM unnest(%(s)s::text[]) s, generate_series(date '2011-01-03', date '2020-12-31', interval '1 day') d"
                " ON CONFLICT DO NOTHING", {"s": symbols})
            conn.execute("ANALYZE stocks_stream.daily_summary")
        yield symbols
    finally:
        drop_symbols(symbols, "perf")
        sql("DELETE FROM stocks_stream.manifest WHERE pipeline = %s", ["perf_" + tag])
        for d in PERF_DAYS:
            for t in ("quotes", "trades"):
                sql(f"DROP TABLE IF EXISTS stocks_stream.{t}_{d.replace('-', '')}")


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


BIG = re.compile(r"^(candles|daily_summary|quotes|trades|quotes_\d+|trades_\d+|manifest)$")


@pytest.mark.parametrize("path", [url[len(POSTGREST_URL):] for method, url, _ in api_examples() if method == "GET"] + [
    "/latest_quotes", "/candles?interval=eq.1m&order=bucket_start.desc&limit=100",
    "/daily_candles?symbol=eq.AAPL", "/symbols"])
def test_request_plans_stay_small_with_millions_of_silver_rows(loaded_silver, path):
    assert sql("SELECT count(*) FROM stocks_stream.quotes")[0][0] >= 2000000
    a = get(path, headers={"Accept": "application/vnd.pgrst.plan+json; options=analyze|buffers"})
    assert a.status == 200, a.text
    plan = a.json()[0]["Plan"]
    scans = [(n["Node Type"], n.get("Relation Name")) for n in plan_nodes(plan) if "Relation Name" in n]
    # symbol_volatility is relative to every symbol: it reads daily_summary (gold, a row per symbol and day)
    allowed = {"daily_summary"} if path.startswith("/symbol_volatility") else set()
    assert not [s for s in scans if s[0] == "Seq Scan" and BIG.match(s[1]) and s[1] not in allowed], scans
    assert not any((r or "").startswith(("quotes", "trades")) for _, r in scans), scans
    blocks = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    assert blocks < 2000, f"{path} read {blocks} blocks"
    text = get(path, headers={"Accept": "application/vnd.pgrst.plan; options=analyze|buffers"}).text
    with open(os.path.join(os.environ.get("STOCKS_STREAM_STACK", ROOT + "/.stack"), "http_plans.txt"), "a") as f:
        f.write(f"GET {path}\n{text}\n")
