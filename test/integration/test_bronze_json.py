"""Bronze lines are read by a strict JSON parser of the project's own
(flat_json.c): every number reaches silver as exactly the double strtod
reads from its text, and what is not JSON is refused as such."""
import json

import pytest

from stack_support import Pipeline, Topic, sql

T = 1764000000000  # 2025-11-24, in ms

# Price texts as a producer may write them; Python's float() reads them as
# strtod does, correctly rounded.  Short decimals take the parser's exact
# fast path, the long ones strtod itself.
PRICES = ["100.25", "187.23", "0.30000000000000004", "123.456e-5", "1E+2", "5e0", "8.0E-3", "2.675", "1.005",
          "0.000000000001", "1e-12", "999999999.99999999999", "3.14159265358979323846264338327950288",
          "900719925.4740993", "12345678.9012345678901", "0.1000000000000000055511151231257827",
          "1000000000", "7", "0.5e1", "123456789012345678e-10", "4.9406564584124654e-1"]


def trade_text(price_text, i):
    return '{"s":"JSONX","p":%s,"t":%d,"v":1,"c":["1"]}' % (price_text, T + i)


@pytest.fixture(scope="module")
def loaded_prices():
    topic = Topic(partitions=1)
    p = Pipeline(topic, batch_max_age_ms=200)
    try:
        p.start()
        topic.produce([trade_text(text, i) for i, text in enumerate(PRICES)], partition=0)
        p.wait_archived(len(PRICES))
        sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
        yield {r.source_offset: r.price for r in sql(
            "SELECT source_offset, price FROM stocks_stream.trades WHERE source_topic = %s", [topic.name])}
    finally:
        p.drop()


@pytest.mark.parametrize("i, text", list(enumerate(PRICES)), ids=PRICES)
def test_a_number_reaches_silver_as_the_double_its_text_reads_as(loaded_prices, i, text):
    assert loaded_prices[i] == float(text)


def check(line):
    return tuple(sql("SELECT kind, reason FROM stocks_stream.check_bronze_line(convert_to(%s, 'UTF8'))",
                     [line])[0])


TRADE = '{"s":"AAPL","p":1.5,"t":1764000000000,"v":1'
SYNTAX = [
    pytest.param(TRADE + '}', ("trade", None), id="plain"),
    pytest.param(' \t' + TRADE + ' , "c" : [ "1" , "12" ] } ', ("trade", None), id="whitespace-everywhere"),
    pytest.param(TRADE + ',"x":{"a":[1,{"b":null}],"c":"\\u00e9"},"y":[true,false]}', ("trade", None),
                 id="nested-unknown-fields-are-checked-and-skipped"),
    pytest.param('{"\\u0073":"AAPL","p":1.5,"t":1764000000000,"v":1}', ("trade", None), id="escaped-key"),
    pytest.param('{"s":"\\u0041APL","p":1.5,"t":1764000000000,"v":1}', ("trade", None), id="escaped-symbol"),
    pytest.param(TRADE + ',"s":"bad symbol"}', ("invalid", 'field "s" is not a symbol of 1 to 32 characters '
                 '[A-Z0-9.:^_/-]'), id="a-repeated-key-takes-the-last-value"),
    pytest.param('{"s":"AAPL","p":1.,"t":1764000000000,"v":1}', ("invalid", "line is not valid JSON"),
                 id="number-ending-in-a-dot"),
    pytest.param('{"s":"AAPL","p":01,"t":1764000000000,"v":1}', ("invalid", "line is not valid JSON"),
                 id="leading-zero"),
    pytest.param('{"s":"AA\tPL","p":1,"t":1764000000000,"v":1}', ("invalid", "line is not valid JSON"),
                 id="raw-control-character-in-a-string"),
    pytest.param(TRADE + ',}', ("invalid", "line is not valid JSON"), id="trailing-comma"),
    pytest.param(TRADE + '} {}', ("invalid", "line is not valid JSON"), id="two-values"),
    pytest.param(TRADE + ',"z":' + "[" * 40 + "]" * 40 + '}', ("invalid", "line is not valid JSON"),
                 id="nested-deeper-than-32"),
    pytest.param('{"s":"AAPL","p":-Infinity,"t":1764000000000,"v":1}',
                 ("invalid", 'field "p" is not a finite number'), id="python-minus-infinity"),
    pytest.param('{"s":"AAPL","p":1,"t":1764000000000,"v":NaN}',
                 ("invalid", 'field "v" is not a finite number'), id="python-nan"),
    pytest.param('{"s":"AAPL","p":1,"t":1764000000000,"v":1,"c":[1]}',
                 ("invalid", 'field "c" holds a condition code that is not 1-16 letters or digits'),
                 id="condition-not-a-string"),
    pytest.param('null', ("invalid", "line is JSON but not an object"), id="null"),
    pytest.param('[1, 2]', ("invalid", "line is JSON but not an object"), id="array"),
    pytest.param('{"s":"AAPL","p":1e999,"t":1764000000000,"v":1}',
                 ("invalid", 'field "p" is not a finite number'), id="overflowing-exponent"),
]


@pytest.mark.parametrize("line, expected", SYNTAX)
def test_a_line_is_read_as_strict_json(line, expected):
    assert check(line) == expected
