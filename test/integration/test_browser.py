"""The chart page in a real browser: Debian's chromium, headless, loads it
from the stack's nginx (page and API on one origin), draws candles, and
says when its data is stale."""
import datetime as dt
import os
import re
import subprocess
import uuid

import pytest

from stack_support import ROOT
from http_helpers import WEB_URL, drop_symbols, insert_trades, new_symbol, refresh_gold

STACK = os.environ.get("STOCKS_STREAM_STACK", os.path.join(ROOT, ".stack"))
CHROMIUM = os.environ.get("CHROMIUM", "chromium")


@pytest.fixture(scope="module")
def charted():
    topic = "web_" + uuid.uuid4().hex[:8]
    sym = new_symbol("HW")
    # 45 minutes of trades, one a minute, a 5-minute gap in the middle
    minutes = [m for m in range(45) if not 20 <= m < 25]
    rows = [(sym, f"2026-03-09T15:{m:02d}:{s:02d}Z", 50 + ((m * 7 + s) % 13) * 0.25 - (m % 5) * 0.3, 10 + m + s)
            for m in minutes for s in (5, 25, 45)]
    insert_trades(rows, topic)
    refresh_gold([sym])
    yield sym, len(minutes)
    drop_symbols([sym], topic)


def chromium(*args, timeout=120):
    profile = os.path.join(STACK, "chromium-profile-" + uuid.uuid4().hex[:6])
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)
    finally:
        subprocess.run(["rm", "-rf", profile])


def test_page_draws_the_candles_and_pipeline_health(charted):
    sym, n = charted
    url = f"{WEB_URL}/?symbol={sym}&interval=1m&end=2026-03-09T16:00:00Z"
    dom = chromium("--dump-dom", url).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-state="ready"' in body, dom[:2000]
    assert f'data-candles="{n}"' in body
    assert re.search(r'data-health-rows="\d+"', body)
    assert f">{n}</span>" in dom               # the count shown under the chart
    assert "<canvas" in dom                      # lightweight-charts drew into its canvases


@pytest.mark.parametrize("interval, expected", [("5m", 8), ("15m", 3), ("1h", 1)])
def test_page_draws_derived_intervals(charted, interval, expected):
    sym, _ = charted
    dom = chromium("--dump-dom", f"{WEB_URL}/?symbol={sym}&interval={interval}&end=2026-03-09T16:00:00Z").stdout
    assert f'data-candles="{expected}"' in dom


def stale_notice(dom):
    """The stale notice's text, or None when it is hidden."""
    m = re.search(r'<p id="stale"([^>]*)>(.*?)</p>', dom, re.S)
    assert m, dom[:2000]
    return None if "hidden" in m.group(1) else m.group(2)


def test_page_says_when_its_data_is_stale(charted):
    sym, _ = charted                              # its newest trade is months old
    dom = chromium("--dump-dom", f"{WEB_URL}/?symbol={sym}&interval=1m").stdout
    assert 'data-stale="true"' in dom
    notice = stale_notice(dom)
    assert notice, dom[:2000]
    assert re.search(rf"newest candle or quote of {sym} is \d+ days old \(2026-03-09T15:44:00", notice), notice


@pytest.fixture
def fresh_symbol():
    topic = "web_" + uuid.uuid4().hex[:8]
    sym = new_symbol("HF")
    now = dt.datetime.now(dt.timezone.utc)
    insert_trades([(sym, (now - dt.timedelta(seconds=s)).isoformat(), 20 + s / 100, 5) for s in (90, 45, 10)], topic)
    refresh_gold([sym])
    yield sym
    drop_symbols([sym], topic)


def test_page_shows_no_stale_notice_for_fresh_data(fresh_symbol):
    dom = chromium("--dump-dom", f"{WEB_URL}/?symbol={fresh_symbol}&interval=1m").stdout
    assert 'data-state="ready"' in dom and 'data-stale="false"' in dom, dom[:2000]
    assert stale_notice(dom) is None
    age = int(re.search(r'data-age-seconds="(\d+)"', dom).group(1))
    assert age < 180


def test_screenshot_saved(charted):
    sym, _ = charted
    path = os.path.join(STACK, "chart.png")
    if os.path.exists(path):
        os.remove(path)
    chromium(f"--screenshot={path}", "--window-size=1280,900",
             f"{WEB_URL}/?symbol={sym}&interval=1m&end=2026-03-09T16:00:00Z")
    assert os.path.getsize(path) > 10000
    print(f"screenshot: {path}")
