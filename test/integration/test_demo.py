"""The newcomer's demo as a user runs it: `scripts/run-pipeline` leaves the
simulator feeding a real-time pipeline, so the chart keeps gaining candles,
nothing waits to be loaded, and every example `scripts/api-examples` prints
answers with rows.

The module starts from what an older run of the demo left: market_bronze in
batch mode with objects waiting to load.  It stops the demo's source and
pipeline when it ends (the demo itself leaves them running).
"""
import datetime as dt
import os
import re
import subprocess

import pytest

from stack_support import ROOT, sql, sql_value, wait_until
from http_helpers import api_examples, get, http

LONG_FLOAT = re.compile(rb"\d\.\d{9,}")
DEMO_SOURCES = ["market_feed", "market_quotes", "market_trades"]


def pending_load():
    return sql_value("SELECT objects_pending_load FROM api.pipeline_health WHERE name = 'market_bronze'")


def older_batch_mode_run():
    """What run-pipeline left before it turned real-time: the simulator into a
    batch-mode market_bronze, and objects archived that nothing loads."""
    if not sql_value("SELECT count(*) FROM stocks_stream.sources WHERE name = 'market_feed'"):
        sql("SELECT stocks_stream.create_source('market_feed', 'simulator', ARRAY['AAPL', 'MSFT'], 'market',"
            " options => '{\"seed\": 7, \"rate\": 200, \"quote_every\": 10}')")
    sql("SELECT stocks_stream.start_source('market_feed')")
    if sql_value("SELECT count(*) FROM stocks_stream.pipelines WHERE name = 'market_bronze'"):
        sql("SELECT stocks_stream.alter_pipeline('market_bronze', realtime => false)")
    else:
        sql("SELECT stocks_stream.create_pipeline('market_bronze', 'market', 'bronze',"
            " batch_max_messages => 2000, batch_max_age_ms => 3000)")
    sql("SELECT stocks_stream.start_pipeline('market_bronze')")
    wait_until(lambda: pending_load() >= 2, 120, "a batch-mode backlog of objects waiting to load")


@pytest.fixture(scope="module")
def demo():
    # the demo's source and pipeline are stopped however this ends: left
    # running, they would feed every later test's load_bronze()
    try:
        older_batch_mode_run()
        switched_at = sql_value("SELECT now()")
        run = subprocess.run([os.path.join(ROOT, "scripts", "run-pipeline"), "5"], capture_output=True, text=True,
                             timeout=900, env=dict(os.environ, FINNHUB_API_KEY=""))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield run.stdout, switched_at
    finally:
        sql("SELECT stocks_stream.stop_source(name) FROM stocks_stream.sources WHERE name = ANY(%s)", [DEMO_SOURCES])
        sql("SELECT stocks_stream.stop_pipeline(name) FROM stocks_stream.pipelines WHERE name = 'market_bronze'")


def newest_candle(symbol):
    rows = get(f"/candles?select=bucket_start&interval=eq.1m&symbol=eq.{symbol}&order=bucket_start.desc&limit=1").json()
    return dt.datetime.fromisoformat(rows[0]["bucket_start"]) if rows else None


def test_demo_leaves_the_pipeline_live_in_real_time_mode(demo):
    out, _ = demo
    assert sql("SELECT running, realtime FROM stocks_stream.pipelines WHERE name = 'market_bronze'") == [(True, True)]
    assert sql_value("SELECT running FROM stocks_stream.sources WHERE name = 'market_feed'")
    tail = out[out.index("still running:"):]
    assert "market_feed" in tail and "market_bronze" in tail and "scripts/stack stop" in tail
    assert "scripts/api-examples" in tail


def test_chart_gains_a_candle_and_nothing_waits_to_load(demo):
    first = wait_until(lambda: newest_candle("AAPL"), 120, "a 1m candle of AAPL")
    # a new minute's candle lands without anyone calling load_bronze() or refresh_gold()
    newer = wait_until(lambda: (newest_candle("AAPL") or first) > first and newest_candle("AAPL"), 240,
                       f"a 1m candle of AAPL after {first}")
    assert newer - first >= dt.timedelta(minutes=1)
    # a minute after the demo's one catch-up load, the worker has loaded each new flush itself
    wait_until(lambda: pending_load() <= 2, 240, "objects_pending_load near zero")


def test_switch_to_real_time_archives_every_offset_once(demo):
    _, switched_at = demo
    wait_until(lambda: sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = 'market_bronze'"
                                 " AND archived_at > %s", [switched_at]) > 0, 120, "objects archived after the switch")
    # per partition, the objects archived since the switch continue the older ones: no offset skipped or twice
    breaks = sql("""
        SELECT topic, partition, first_offset, prev_last
          FROM (SELECT topic, partition, first_offset, archived_at,
                       lag(last_offset) OVER (PARTITION BY topic, partition ORDER BY first_offset) AS prev_last
                  FROM stocks_stream.manifest WHERE pipeline = 'market_bronze') m
         WHERE archived_at > %s AND prev_last IS NOT NULL AND first_offset <> prev_last + 1""", [switched_at])
    assert breaks == []
    assert sql_value("SELECT gaps FROM api.pipeline_health WHERE name = 'market_bronze'") == 0


def test_every_printed_example_answers_with_rows(demo):
    examples = api_examples()
    assert len([e for e in examples if e[0] == "GET"]) >= 8
    for method, url, body in examples:
        if method == "GET":
            a = get(url)
            assert a.status == 200, (url, a.text)
            assert isinstance(a.json(), list) and a.json(), f"{url} answered no rows"
            assert not LONG_FLOAT.search(a.body), url
        else:
            a = http(method, url, data=body, headers={"Content-Type": "application/json"})
            assert (a.status, a.json()["code"]) == (401, "42501"), (url, a.text)


def test_run_pipeline_prints_the_examples_and_their_answers(demo):
    out, _ = demo
    printed = out[out.index("== example requests"):out.index("still running:")]
    for method, url, _ in api_examples():
        path = url.split("?")[0]
        assert path in printed, f"{method} {path} not printed"
    assert "(HTTP 200) []" not in printed
    assert "(HTTP 401)" in printed
