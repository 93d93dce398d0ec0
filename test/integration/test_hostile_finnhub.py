"""Hostile Finnhub answers: the sources refuse them, say so in source_status,
and never take the server down; every good trade or quote still arrives once.

Each case runs under ServerWatch: a crash of the ingest worker (as a
{"type":null} message once caused, 50 times in 12 s) would end its session.
"""
import json
import os

import pytest

from fake_finnhub import FakeFinnhub
from stack_support import ServerWatch, Source, Topic, finnhub_served_by, read_topic, set_settings, wait_until


@pytest.fixture(scope="module")
def fake():
    with FakeFinnhub(limit_per_minute=6000, ping_interval=1.0) as f, finnhub_served_by(f):
        yield f


@pytest.fixture
def trades_source(fake):
    made = []

    def make(symbols):
        t = Topic()
        s = Source("finnhub_trades", symbols, t.name)
        made.append(s)
        before = fake.connections_accepted
        s.start()
        wait_subscribed(fake, symbols, before + 1)
        return s, t

    yield make
    for s in made:
        pid = (s.status() or {}).get("pid")
        s.drop()
        if pid:
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, f"source {s.name}'s worker to exit")


def wait_subscribed(fake, symbols, connections):
    wait_until(lambda: fake.connections_accepted >= connections and
               any(s == set(symbols) for s in fake.subscriptions()), 30, f"subscriptions to {symbols}")


def produced_trades(topic):
    return sorted((json.loads(m.value) for m in read_topic(topic.name)), key=lambda d: (d["t"], d["p"], d["v"]))


def by_time(trades):
    return sorted(trades, key=lambda d: (d["t"], d["p"], d["v"]))


def refused(src, words):
    """True once source_status's last error holds the words (or one of a tuple of them)."""
    options = words if isinstance(words, tuple) else (words,)
    return lambda: any(w in ((src.status() or {}).get("last_error") or "") for w in options)


# A message the stream refuses, and words of what source_status says of it.
REFUSED_MESSAGES = [
    pytest.param('{"type":null}', 'not JSON with a string "type"', id="type-null"),
    pytest.param('{"type":42,"data":[]}', 'not JSON with a string "type"', id="type-number"),
    pytest.param('{"type":"trade","data":{"s":"AAPL"}}', '"data" is not an array', id="data-not-array"),
    pytest.param('{"type":"trade","data":"AAPL"}', '"data" is not an array', id="data-string"),
    pytest.param(b'{"type":"trade","data":[{"s":"AAPL\xff","p":1}]}', 'not JSON', id="bad-utf8"),
    pytest.param('[1,2,3]', 'not JSON with a string "type"', id="not-an-object"),
    pytest.param('{"type":"trade","data":[', 'not JSON with a string "type"', id="truncated-json"),
]


@pytest.mark.parametrize("message, says", REFUSED_MESSAGES)
def test_a_refused_message_is_reported_and_the_good_trades_still_arrive(fake, trades_source, message, says):
    with ServerWatch():
        src, t = trades_source(["AAPL"])
        fake.send_raw(message)
        wait_until(refused(src, says), 30, f"source_status to report: {says}")
        good = fake.trades("AAPL", 3)
        fake.send_raw(json.dumps({"type": "trade", "data": good}))
        wait_until(lambda: src.status()["produced"] == 3, 30, "the good trades produced")
    assert produced_trades(t) == by_time(good)


def test_a_trade_without_a_symbol_is_skipped_and_counted(fake, trades_source):
    with ServerWatch():
        src, t = trades_source(["MSFT"])
        good = fake.trades("MSFT", 2)
        fake.send_raw(json.dumps({"type": "trade", "data": [good[0], {"s": None, "p": 1}, 7, good[1]]}))
        wait_until(lambda: src.status()["produced"] == 2, 30, "the two good trades produced")
        wait_until(refused(src, "without a symbol"), 30, "the skipped trades reported")
    assert produced_trades(t) == by_time(good)


# A message longer than stocks_stream.ws_max_message: whole, or one whose fragments never end.
LONG_MESSAGES = [
    pytest.param("64kB", lambda fake, symbol: fake.send_raw(json.dumps(
        {"type": "trade", "data": fake.trades(symbol, 2000)})), id="whole-170kB"),   # ~170 kB
    pytest.param("256kB", lambda fake, symbol: fake.send_endless(), id="never-ends"),
]


@pytest.mark.parametrize("limit, send_long", LONG_MESSAGES)
def test_a_message_over_the_limit_is_refused_and_the_stream_made_again(fake, trades_source, limit, send_long):
    set_settings(ws_max_message=limit)
    try:
        with ServerWatch():
            src, t = trades_source(["GOOGL"])
            before = fake.connections_accepted
            send_long(fake, "GOOGL")
            wait_until(refused(src, "over stocks_stream.ws_max_message"), 60, "the long message refused")
            wait_subscribed(fake, ["GOOGL"], before + 1)
            good = fake.trades("GOOGL", 3)
            fake.send_raw(json.dumps({"type": "trade", "data": good}))
            wait_until(lambda: src.status()["produced"] == 3, 30, "the good trades after it")
        assert produced_trades(t) == by_time(good)
    finally:
        set_settings(ws_max_message=None)


def test_half_a_message_is_not_glued_to_the_next_connection(fake, trades_source):
    with ServerWatch():
        src, t = trades_source(["TSLA"])
        before = fake.connections_accepted
        lost = fake.trades("TSLA", 50)
        fake.send_half_and_drop(json.dumps({"type": "trade", "data": lost}))
        wait_subscribed(fake, ["TSLA"], before + 1)
        good = fake.trades("TSLA", 3)
        fake.send_raw(json.dumps({"type": "trade", "data": good}))
        wait_until(lambda: src.status()["produced"] == 3, 30, "the trades of the new connection")
        assert src.status()["reconnects"] >= 1
    # the half message was never read as JSON with the new one's bytes
    assert produced_trades(t) == by_time(good)


def test_a_silent_connection_is_taken_for_dead_and_made_again(fake, trades_source):
    set_settings(ws_silence_timeout="3s")
    fake.silent = True
    try:
        with ServerWatch():
            src, t = trades_source(["NVDA"])
            before = fake.connections_accepted
            wait_until(lambda: fake.connections_accepted > before, 30, "a new connection after the silence")
            wait_until(refused(src, "nothing received"), 10, "the silence reported")
            fake.silent = False
            wait_subscribed(fake, ["NVDA"], before + 1)
            good = fake.trades("NVDA", 2)
            fake.send_raw(json.dumps({"type": "trade", "data": good}))
            wait_until(lambda: src.status()["produced"] == 2, 30, "trades on the new connection")
    finally:
        fake.silent = False
        set_settings(ws_silence_timeout=None)


def test_trades_over_the_cap_are_dropped_and_counted(fake, trades_source):
    set_settings(ws_max_message="16MB")
    try:
        with ServerWatch():
            src, t = trades_source(["META"])
            trades = fake.trades("META", 100_005)
            fake.send_raw(json.dumps({"type": "trade", "data": trades}))
            wait_until(lambda: src.status()["produced"] == 100_000, 120, "the first 100,000 trades produced")
            wait_until(refused(src, "5 trades dropped"), 30, "the 5 trades over the cap reported")
    finally:
        set_settings(ws_max_message=None)


# A /quote answer the quotes source refuses, and words of what it says.
HOSTILE_QUOTES = [
    pytest.param(b'{"c":1,"pc":1,"t":1764000000,"pad":"' + b"x" * 70000 + b'"}', "longer than 65536 bytes",
                 id="body-over-limit"),
    pytest.param(b'{"c":1,"pc":1,"t":1764000000,"note":"\xc3\x28"}', "not valid UTF-8", id="invalid-utf8"),
    pytest.param(b'{"c":1,"pc":1,"t":1e300}', '"t" is not a time', id="huge-t"),
    pytest.param(b'{"c":1,"pc":1,"t":-5}', '"t" is not a time', id="negative-t"),
    pytest.param(b'{"c":1,"pc":1,"t":NaN}', ("not JSON", "not a finite number"), id="nan-t"),
    pytest.param(b'{"c":1,"pc":1,"t":1764000000.5}', '"t" is not a time', id="fractional-t"),
    pytest.param(b'{"c":"1","pc":1,"t":1764000000}', "not a finite number", id="string-price"),
    pytest.param(b'[]', "not a JSON object", id="array"),
]


@pytest.mark.parametrize("body, says", HOSTILE_QUOTES)
def test_a_hostile_quote_is_reported_and_the_good_quotes_still_arrive(fake, body, says):
    symbol = "ZZHOST"
    fake.quote_bodies[symbol] = body
    t = Topic()
    src = Source("finnhub_quotes", [symbol, "AAPL"], t.name, poll_interval_ms=1000,
                 options={"calls_per_minute": 600})
    try:
        with ServerWatch():
            src.start()
            wait_until(refused(src, says), 30, f"source_status to report: {says}")
            wait_until(lambda: src.status()["produced"] >= 2, 30, "good quotes produced")
            src.stop_and_wait()
        assert {json.loads(m.value)["symbol"] for m in read_topic(t.name)} == {"AAPL"}
    finally:
        src.drop()
        fake.quote_bodies.pop(symbol, None)
