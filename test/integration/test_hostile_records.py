"""No single record stops or corrupts the pipeline: values that are valid
JSON but absurd, strings that hide a NUL, times from before the market had
computers, and Kafka tombstones are quarantined with a reason a person can
act on; everything that passes is safe in every later step (gold included)."""
import json

import psycopg
import pytest

from stack_support import Topic, sql, sql_value, wait_until

NOW = 1764000000  # 2025-11-24


def trade(**fields):
    return json.dumps({"s": "AAPL", "p": 100.5, "t": NOW * 1000, "v": 10, "c": ["1"], **fields})


def quote(**fields):
    return json.dumps({"c": 100.5, "d": 0.5, "dp": 0.5, "h": 101, "l": 99, "o": 100, "pc": 100,
                       "t": NOW, "symbol": "AAPL", **fields})


HOSTILE = [
    pytest.param(trade(p=1e308, v=1e308), 'field "v" is out of bounds (absurdly large)', id="trade-1e308"),
    pytest.param(trade(p=1e300), 'price ("p") is out of bounds', id="price-1e300"),
    pytest.param(trade(p=1e-300), 'price ("p") is out of bounds', id="price-1e-300"),
    pytest.param(trade(v=1e20), 'field "v" is out of bounds (absurdly large)', id="volume-1e20"),
    pytest.param(quote(pc=1e200), 'field "pc" is out of bounds (absurdly large)', id="quote-prev-close-1e200"),
    pytest.param(trade(s="PS\u0000NF"), 'field "s" holds a NUL character', id="symbol-with-nul"),
    pytest.param(quote(symbol="AA\u0000PL"), 'field "symbol" holds a NUL character', id="quote-symbol-with-nul"),
    pytest.param(trade(c=["1", "X\u0000Y"]), 'field "c" holds a NUL character', id="condition-with-nul"),
    pytest.param(quote(t=1), 'field "t" is before stocks_stream.min_event_year', id="quote-from-1970"),
    pytest.param(trade(t=946684799000), 'field "t" is before stocks_stream.min_event_year', id="trade-1999-12-31"),
    pytest.param("", "empty message (tombstone)", id="tombstone"),
]


@pytest.mark.parametrize("line, reason", HOSTILE)
def test_hostile_line_is_refused_with_its_reason(line, reason):
    row = sql("SELECT kind, reason FROM stocks_stream.check_bronze_line(convert_to(%s, 'UTF8'))", [line])[0]
    assert (row.kind, row.reason) == ("invalid", reason)


@pytest.mark.parametrize("line", [
    pytest.param(trade(t=946684800000), id="trade-on-2000-01-01"),
    pytest.param(trade(p=1e9, v=1e15), id="largest-price-and-volume"),
    pytest.param(trade(p=1e-12), id="smallest-price"),
    pytest.param(quote(dp=-99.9, d=-1e6), id="large-negative-change"),
])
def test_values_at_the_bounds_are_loaded(line):
    assert sql_value("SELECT kind FROM stocks_stream.check_bronze_line(convert_to(%s, 'UTF8'))", [line]) != "invalid"


def test_horizon_is_a_setting():
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("SET stocks_stream.min_event_year = 1971")
        old = conn.execute("SELECT kind FROM stocks_stream.check_bronze_line(convert_to(%s, 'UTF8'))",
                           [quote(t=86400 * 366)]).fetchone()[0]
        assert old == "quote"


def test_hostile_records_through_kafka_never_stop_silver_or_gold(make_pipeline):
    """Hostile lines between good ones, a tombstone among them, all archived and
    loaded: the good ones reach silver, the others quarantine, gold refreshes."""
    t = Topic(partitions=1)
    p = make_pipeline(t, batch_max_age_ms=300)
    good = [trade(t=(NOW + i) * 1000, p=100 + i) for i in range(20)]
    hostile = [values[0] for values in (case.values for case in HOSTILE) if values[0]]
    producer = t.producer()
    t.produce(good[:10] + hostile, producer=producer, partition=0)
    producer.produce(t.name, value=None, key=b"AAPL", partition=0)   # a tombstone
    t.produce(good[10:], producer=producer, partition=0)
    p.start()
    total = len(good) + len(hostile) + 1
    wait_until(lambda: p.archived_count() == total, 120, f"{total} messages archived")
    loaded = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])[0]
    assert (loaded.rows_loaded, loaded.rows_quarantined, loaded.objects_failed) == (20, len(hostile) + 1, 0)
    reasons = [r.reason for r in sql(
        "SELECT q.reason FROM stocks_stream.quarantine q JOIN stocks_stream.manifest m "
        "ON m.bucket = q.bucket AND m.object_key = q.object_key WHERE m.pipeline = %s ORDER BY q.line_number",
        [p.name])]
    assert reasons == [values[1] for values in (case.values for case in HOSTILE) if values[0]] + \
        ["empty message (tombstone)"]
    assert sql_value("SELECT count(*) FROM stocks_stream.trades WHERE source_topic = %s", [t.name]) == 20
    sql("SELECT stocks_stream.refresh_gold()")
    assert sql_value("SELECT count(*) FROM stocks_stream.gold_errors") == 0
    assert sql_value("SELECT max(high) FROM stocks_stream.candles WHERE symbol = 'AAPL' AND interval = '1m' "
                     "AND bucket_start >= to_timestamp(%s) AND bucket_start < to_timestamp(%s)",
                     [NOW - NOW % 60, NOW + 60]) < 1000
