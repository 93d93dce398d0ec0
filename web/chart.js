// The chart page: candlesticks and volume of one symbol and interval from
// /api/rpc/candle_series, refreshed as new candles land, and the pipeline's
// health from /api/pipeline_health.  URL parameters: symbol, interval,
// end (ISO time the chart ends at; default: the symbol's latest candle),
// refresh (seconds, default 5), stale (seconds, default 180: older data
// raises the stale notice).  When the symbol's newest 1m candle and newest
// quote are both older than `stale`, a notice above the chart says so with
// their age; fresh data clears it.  The page exposes what it drew: <body
// data-candles="N" data-health-rows="M" data-state="ready|error"
// data-stale="true|false" data-age-seconds="S">.
(function () {
  'use strict';
  const API = 'api/';
  const WIDTH = { '1m': 60, '5m': 300, '15m': 900, '30m': 1800, '1h': 3600, '4h': 14400, '1d': 86400, '1w': 604800 };
  const BARS = 300;
  const params = new URLSearchParams(location.search);
  const refreshSeconds = Number(params.get('refresh') || 5);
  const staleSeconds = Number(params.get('stale') || 180);
  const symbolSelect = document.getElementById('symbol');
  const intervalSelect = document.getElementById('interval');
  const status = document.getElementById('status');

  const chart = LightweightCharts.createChart(document.getElementById('chart'), {
    layout: { background: { color: '#0f1419' }, textColor: '#d8dee9' },
    grid: { vertLines: { color: '#1f2630' }, horzLines: { color: '#1f2630' } },
    timeScale: { timeVisible: true, secondsVisible: false },
    autoSize: true,
  });
  const candles = chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: '#26a69a', downColor: '#ef5350', borderVisible: false,
    wickUpColor: '#26a69a', wickDownColor: '#ef5350',
  });
  const volume = chart.addSeries(LightweightCharts.HistogramSeries, {
    priceFormat: { type: 'volume' }, priceScaleId: '',
  });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });

  async function get(path) {
    const r = await fetch(API + path, { headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(path.split('?')[0] + ': HTTP ' + r.status);
    return r.json();
  }

  function fail(e) {
    status.textContent = String(e.message || e);
    status.className = 'error';
    document.body.dataset.state = 'error';
  }

  async function loadSymbols() {
    const rows = await get('symbols?select=symbol,exchange,time_zone&order=symbol');
    const wanted = params.get('symbol');
    const names = rows.map((r) => r.symbol);
    if (wanted && !names.includes(wanted)) names.unshift(wanted);
    symbolSelect.innerHTML = '';
    for (const s of names) symbolSelect.add(new Option(s, s, false, s === wanted));
    intervalSelect.value = WIDTH[params.get('interval')] ? params.get('interval') : '1m';
  }

  // the time of the symbol's newest 1m candle (its start) and newest quote, or null
  async function newestData(symbol) {
    const s = encodeURIComponent(symbol);
    const [candle, quote] = await Promise.all([
      get('candles?select=bucket_start&interval=eq.1m&order=bucket_start.desc&limit=1&symbol=eq.' + s),
      get('latest_quotes?select=quote_time&symbol=eq.' + s),
    ]);
    return {
      candle: candle.length ? new Date(candle[0].bucket_start) : null,
      quote: quote.length ? new Date(quote[0].quote_time) : null,
    };
  }

  function endTime(newest) {
    if (params.get('end')) return new Date(params.get('end'));
    return newest.candle ? new Date(newest.candle.getTime() + 60000) : new Date();
  }

  function age(seconds) {
    if (seconds < 120) return Math.round(seconds) + ' s';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min';
    if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
    return Math.round(seconds / 86400) + ' days';
  }

  function drawFreshness(symbol, newest) {
    const notice = document.getElementById('stale');
    const times = [newest.candle, newest.quote].filter((t) => t);
    const last = times.length ? new Date(Math.max(...times)) : null;
    const seconds = last ? Math.max(0, (Date.now() - last.getTime()) / 1000) : Infinity;
    const stale = seconds > staleSeconds;
    notice.hidden = !stale;
    notice.textContent = !stale ? '' : last
      ? 'Stale data: the newest candle or quote of ' + symbol + ' is ' + age(seconds) + ' old ('
        + last.toISOString() + '); is the pipeline running? See its health below.'
      : 'No candles or quotes of ' + symbol + ' yet.';
    document.body.dataset.stale = String(stale);
    document.body.dataset.ageSeconds = last ? String(Math.round(seconds)) : '';
  }

  async function drawCandles() {
    const symbol = symbolSelect.value;
    const interval = intervalSelect.value;
    if (!symbol) { status.textContent = 'no symbols with data yet'; return; }
    const newest = await newestData(symbol);
    drawFreshness(symbol, newest);
    const end = endTime(newest);
    const start = new Date(end.getTime() - BARS * WIDTH[interval] * 1000);
    const rows = await get('rpc/candle_series?fill_gaps=false&symbol=' + encodeURIComponent(symbol)
      + '&interval=' + interval + '&start_time=' + start.toISOString() + '&end_time=' + end.toISOString());
    const bars = rows.map((r) => ({
      time: Date.parse(r.bucket_start) / 1000,
      open: Number(r.open), high: Number(r.high), low: Number(r.low), close: Number(r.close),
    }));
    const first = candles.data().length === 0;
    candles.setData(bars);
    volume.setData(rows.map((r) => ({
      time: Date.parse(r.bucket_start) / 1000,
      value: Number(r.volume || 0),
      color: Number(r.close) >= Number(r.open) ? 'rgba(38,166,154,0.5)' : 'rgba(239,83,80,0.5)',
    })));
    document.getElementById('candle-count').textContent = String(bars.length);
    document.getElementById('last-price').textContent = bars.length
      ? symbol + ' ' + rows[rows.length - 1].close : symbol;
    document.body.dataset.candles = String(bars.length);
    if (first) chart.timeScale().fitContent();
  }

  function cell(tr, value, numeric) {
    const td = tr.insertCell();
    td.textContent = value === null || value === undefined ? '—' : String(value);
    if (numeric) td.className = 'num';
  }

  async function drawHealth() {
    const rows = await get('pipeline_health?order=kind,name');
    const body = document.querySelector('#health tbody');
    body.innerHTML = '';
    for (const r of rows) {
      const tr = body.insertRow();
      cell(tr, r.kind); cell(tr, r.name); cell(tr, r.running); cell(tr, r.state);
      cell(tr, r.messages, true); cell(tr, r.consumer_lag, true);
      cell(tr, r.objects_pending_load, true); cell(tr, r.objects_failed_load, true);
      cell(tr, r.last_activity);
    }
    document.body.dataset.healthRows = String(rows.length);
  }

  async function refresh() {
    try {
      await Promise.all([drawCandles(), drawHealth()]);
      document.getElementById('refreshed').textContent = new Date().toISOString();
      status.textContent = '';
      status.className = '';
      document.body.dataset.state = 'ready';
    } catch (e) {
      fail(e);
    }
  }

  symbolSelect.addEventListener('change', () => { candles.setData([]); refresh(); });
  intervalSelect.addEventListener('change', () => { candles.setData([]); refresh(); });
  loadSymbols().then(refresh, fail);
  setInterval(refresh, refreshSeconds * 1000);
})();
