"""The Finnhub sources against a local fake that answers as Finnhub documents."""
import json
import os
import time

import pytest

from stack_support import Source, Topic, finnhub_served_by, holds_for, read_topic, set_secret, wait_until
from fake_finnhub import FakeFinnhub

QUOTE_FIELDS = ["c", "d", "dp", "h", "l", "o", "pc", "t", "symbol", "fetched_time"]


@pytest.fixture(scope="module")
def fake():
    with FakeFinnhub(limit_per_minute=600, ping_interval=1.0) as f, finnhub_served_by(f):
        yield f


@pytest.fixture
def source():
    made = []

    def make(*args, **kwargs):
        s = Source(*args, **kwargs)
        made.append(s)
        s.start()
        return s

    yield make
    for s in made:
        pid = (s.status() or {}).get("pid")
        s.drop()
        if pid:   # the next test's requests are its own
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, f"source {s.name}'s worker to exit")


def requests_for(fake, symbols, since):
    return [r for r in fake.quote_requests() if r["symbol"] in symbols and r["time"] >= since]


def test_quotes_reach_kafka_keyed_by_symbol_with_exact_fields(fake, source):
    symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"]
    t = Topic()
    since = time.time()
    src = source("finnhub_quotes", symbols, t.name, poll_interval_ms=1000,
                 options={"calls_per_minute": 600})
    wait_until(lambda: (st := src.status()) and st["produced"] >= 10, 60, "ten quotes produced")
    src.stop_and_wait()
    answered = {}
    for r in requests_for(fake, symbols, since):
        assert r["token_in"] == "header" and "token" not in r["path"]
        if r["status"] == 200:
            q = json.loads(r["body"])
            answered[(r["symbol"], q["t"])] = q
    msgs = read_topic(t.name)
    assert {m.key for m in msgs} == set(symbols)
    for _, _, key, value, headers in msgs:
        m = json.loads(value)
        assert list(m) == QUOTE_FIELDS
        assert m["symbol"] == key and abs(m["fetched_time"] - time.time()) < 120
        sent = answered[(key, m["t"])]
        assert {k: m[k] for k in sent} == sent
        assert headers["source"] == src.name.encode()


def test_call_rate_stays_within_budget(fake, source):
    symbols = ["NVDA", "META", "TSLA"]
    t = Topic()
    since = time.time()
    # 120 calls a minute: one call every 500 ms at most
    src = source("finnhub_quotes", symbols, t.name, poll_interval_ms=1500,
                 options={"calls_per_minute": 120})
    wait_until(lambda: len(requests_for(fake, symbols, since)) >= 10, 60, "ten calls")
    src.stop_and_wait()
    elapsed = time.time() - since
    times = sorted(r["time"] for r in requests_for(fake, symbols, since))
    assert len(times) >= 10
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.45, f"calls {min(gaps):.3f}s apart"
    assert len(times) <= elapsed / 0.5 + 2, f"{len(times)} calls in {elapsed:.1f}s"


def test_429_burst_loses_no_poll_cycle_afterwards(fake, source):
    symbols = ["AAPL", "MSFT", "GOOGL"]
    t = Topic()
    src = source("finnhub_quotes", symbols, t.name, poll_interval_ms=1500,
                 options={"calls_per_minute": 600})
    wait_until(lambda: (st := src.status()) and st["produced"] >= 3, 30, "first cycle")
    since = time.time()
    fake.force_429(4)
    wait_until(lambda: (st := src.status()) and st["http_429"] == 4, 60, "four 429s counted")

    def calls_since_burst():
        """The calls since the burst, the index of the last 429, and the symbols answered after it."""
        reqs = requests_for(fake, symbols, since)
        last_429 = max(i for i, r in enumerate(reqs) if r["status"] == 429)
        return reqs, last_429, [r["symbol"] for r in reqs[last_429 + 1:] if r["status"] == 200]

    wait_until(lambda: len(calls_since_burst()[-1]) >= 6, 60, "six calls answered after the last 429")
    st = src.status()   # read while the source runs: a stopped source has no status
    src.stop_and_wait()
    reqs, last_429, after = calls_since_burst()
    # the symbol that got the 429s comes first, then the rotation continues unbroken
    assert after[0] == reqs[last_429]["symbol"]
    assert len(after) >= 6
    start = symbols.index(after[0])
    assert after == [symbols[(start + i) % 3] for i in range(len(after))]
    assert st["http_429"] == 4 and "429" in st["last_error"]


def test_bad_token_is_reported_without_a_hot_loop(fake, source):
    set_secret("finnhub_api_key", "not-the-token")
    try:
        t = Topic()
        since = time.time()
        src = source("finnhub_quotes", ["AAPL", "MSFT"], t.name, poll_interval_ms=1000,
                     options={"calls_per_minute": 600})
        st = wait_until(lambda: (st := src.status()) and st["state"] == "API key rejected" and st,
                        30, "the key to be reported")
        assert "401" in st["last_error"] and "finnhub_api_key" in st["last_error"]

        def bad_calls():
            return [r for r in fake.quote_requests() if r["time"] >= since and r["token"] == "not-the-token"]

        # no hot loop: over the next 8 s the rejected key is tried at most twice in all
        holds_for(lambda: len(bad_calls()) <= 2, 8, "at most two calls with the rejected key")
        assert len(bad_calls()) <= 2
        assert src.status()["produced"] == 0
    finally:
        set_secret("finnhub_api_key", "test-token")


def test_zero_and_unchanged_quotes_are_counted_not_produced(fake, source):
    fake.frozen.add("AMZN")
    try:
        t = Topic()
        src = source("finnhub_quotes", ["AMZN", "XXXX"], t.name, poll_interval_ms=1000,
                     options={"calls_per_minute": 600})
        wait_until(lambda: (st := src.status()) and st["zero"] >= 2 and st["unchanged"] >= 2, 30,
                   "zero and unchanged quotes counted")
        src.stop_and_wait()
        keys = [m.key for m in read_topic(t.name)]
        assert keys == ["AMZN"]
    finally:
        fake.frozen.discard("AMZN")


def wait_subscribed(fake, symbols, connections=1):
    wait_until(lambda: fake.connections_accepted >= connections and
               any(s == set(symbols) for s in fake.subscriptions()), 30, f"subscriptions to {symbols}")


def test_every_trade_of_a_multi_trade_message_arrives(fake, source):
    t = Topic()
    src = source("finnhub_trades", ["AAPL", "MSFT"], t.name)
    before = fake.connections_accepted
    wait_subscribed(fake, ["AAPL", "MSFT"], before + 1)
    sent = fake.push_trades("AAPL", 5) + fake.push_trades("MSFT", 3)
    wait_until(lambda: (st := src.status()) and st["produced"] == 8, 30, "eight trades produced")
    msgs = read_topic(t.name)
    got = sorted((json.loads(m.value) for m in msgs), key=lambda d: (d["s"], d["t"], d["p"], d["v"]))
    assert got == sorted(sent, key=lambda d: (d["s"], d["t"], d["p"], d["v"]))
    assert all(m.key == json.loads(m.value)["s"] for m in msgs)
    # keep-alive pings are answered
    pongs = fake.pongs
    wait_until(lambda: fake.pongs > pongs, 10, "a pong")


def test_dropped_websocket_reconnects_and_resubscribes(fake, source):
    t = Topic()
    src = source("finnhub_trades", ["GOOGL", "NVDA"], t.name)
    before = fake.connections_accepted
    wait_subscribed(fake, ["GOOGL", "NVDA"], before + 1)
    fake.drop_connections()
    wait_subscribed(fake, ["GOOGL", "NVDA"], before + 2)
    sent = fake.push_trades("NVDA", 4)
    wait_until(lambda: (st := src.status()) and st["produced"] == 4, 30, "trades after the reconnect")
    st = src.status()
    assert st["reconnects"] >= 1 and st["state"] == "running"
    assert sorted(json.loads(m.value)["t"] for m in read_topic(t.name)) == sorted(x["t"] for x in sent)
