"""The simulator source: deterministic, Finnhub-shaped, nothing lost."""
import json
import time

from stack_support import Source, Topic, read_topic, stack, wait_until

QUOTE_FIELDS = ["c", "d", "dp", "h", "l", "o", "pc", "t", "symbol", "fetched_time"]
TRADE_FIELDS = ["s", "p", "t", "v", "c"]


def per_symbol(messages):
    by = {}
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        by.setdefault(m.key, []).append((json.loads(m.value), m.headers))
    return by


def wait_done(src, n, timeout=120):
    return wait_until(lambda: (st := src.status()) and st["state"] == "done" and st["produced"] == n and st,
                      timeout, f"source {src.name} to produce {n} messages")


def test_same_seed_same_sequence_and_expected_first_values():
    topics = [Topic(), Topic(), Topic()]
    opts = {"seed": 7, "rate": 0, "max_messages": 12, "quote_every": 3}
    sources = [Source("simulator", ["AAPL", "MSFT"], topics[0].name, options=opts),
               Source("simulator", ["AAPL", "MSFT"], topics[1].name, options=opts),
               Source("simulator", ["AAPL", "MSFT"], topics[2].name, options={**opts, "seed": 8})]
    try:
        for s in sources:
            s.start()
        for s in sources:
            wait_done(s, 12)
        runs = [per_symbol(read_topic(t.name)) for t in topics]

        def values(run):
            return {sym: [(m.get("p", m.get("c")), m.get("v")) for m, _ in msgs] for sym, msgs in run.items()}

        assert values(runs[0]) == values(runs[1])
        assert values(runs[0]) != values(runs[2])
        aapl = [m for m, _ in runs[0]["AAPL"]]
        msft = [m for m, _ in runs[0]["MSFT"]]
        # golden values of seed 7: a regression check of the random walk
        assert [(m["p"], m["v"]) for m in aapl[:2]] == [(221.26, 5), (221.25, 83)]
        assert (aapl[2]["c"], aapl[2]["o"], aapl[2]["pc"]) == (221.31, 221.29, 224.02)
        assert (msft[0]["p"], msft[0]["v"]) == (330.00, 17)
    finally:
        for s in sources:
            s.drop()


def test_messages_have_finnhub_shapes_keys_and_headers():
    t = Topic()
    src = Source("simulator", ["AAPL", "MSFT", "NVDA"], t.name,
                 options={"seed": 1, "rate": 5000, "max_messages": 3000, "quote_every": 4})
    try:
        src.start()
        wait_done(src, 3000)
        msgs = read_topic(t.name)
        assert len(msgs) == 3000
        quotes = trades = 0
        for _, _, key, value, headers in msgs:
            m = json.loads(value)
            assert headers == {"source": src.name.encode(), "schema_version": b"1"}
            if "symbol" in m:
                quotes += 1
                assert list(m) == QUOTE_FIELDS
                assert key == m["symbol"]
                assert m["l"] <= m["c"] <= m["h"] and m["l"] <= m["o"] <= m["h"]
                assert abs(m["d"] - round(m["c"] - m["pc"], 2)) < 0.006
                assert abs(m["t"] - time.time()) < 120 and m["fetched_time"] == m["t"]
            else:
                trades += 1
                assert list(m) == TRADE_FIELDS
                assert key == m["s"] and m["p"] > 0 and m["v"] >= 1 and m["c"] == ["1"]
                assert abs(m["t"] / 1000 - time.time()) < 120
        assert quotes == 750 and trades == 2250
    finally:
        src.drop()


def test_broker_down_20s_loses_no_counted_message():
    t = Topic()
    src = Source("simulator", ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"], t.name,
                 options={"seed": 3, "rate": 500, "max_messages": 20000})
    try:
        src.start()
        wait_until(lambda: (st := src.status()) and st["produced"] > 1000, 60, "production to start")
        stack("stop-kafka")
        time.sleep(20)   # the outage itself: the broker stays down twenty seconds
        stuck = src.status()
        stack("start-kafka")
        assert stuck["state"] in ("waiting for Kafka", "running")
        st = wait_done(src, 20000, timeout=240)
        assert st["failures"] == 0
        msgs = read_topic(t.name, timeout=60)
        assert len(msgs) == 20000
        # no gap and no repeat in any symbol's sequence of timestamps
        for sym, seq in per_symbol(msgs).items():
            ts = [m.get("t") if "s" in m else m["t"] * 1000 for m, _ in seq]
            assert len(seq) == 4000
            assert all(a <= b + 1000 for a, b in zip(ts, ts[1:]))
    finally:
        src.drop()


def test_simulator_to_kafka_to_s3_every_message_archived_once(make_pipeline):
    t = Topic()
    p = make_pipeline(t, batch_max_age_ms=500)
    src = Source("simulator", ["AAPL", "MSFT", "GOOGL"], t.name,
                 options={"seed": 11, "rate": 2000, "max_messages": 8000})
    try:
        p.start()
        src.start()
        wait_done(src, 8000)
        p.wait_archived(8000)
        produced = {(m.partition, m.offset): m.value for m in read_topic(t.name)}
        assert len(produced) == 8000
        assert p.archived_messages() == produced
    finally:
        src.drop()
