-- stocks_stream: what a fresh install makes once and an update never runs
-- again (sql/README.md): the schema api, tables, their sequences, indexes,
-- comments and pg_extension_config_dump marks, types, and the built-in
-- rows.  As of 0.4.0: an install updated from an older version has the
-- same columns in the same order (test_operations.py compares them).
-- Functions, views, triggers and grants are in the concern files.

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS 'stocks_stream market data: gold candles and daily summaries, latest quotes, top movers, pipeline health. Read-only.';

-- ---------------------------------------------------------------------------
-- Archive pipelines (Kafka -> S3)
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.pipelines (
    pipeline_id        serial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    topic              text NOT NULL,
    bucket             text NOT NULL,
    key_prefix         text NOT NULL DEFAULT 'bronze',
    batch_max_messages integer NOT NULL DEFAULT 100000,
    batch_max_bytes    bigint NOT NULL DEFAULT 16777216,
    batch_max_age_ms   integer NOT NULL DEFAULT 10000,
    gzip               boolean NOT NULL DEFAULT false,
    workers            integer NOT NULL DEFAULT 1,
    realtime           boolean NOT NULL DEFAULT false,
    running            boolean NOT NULL DEFAULT false,
    generation         integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    format             text NOT NULL DEFAULT 'ndjson' CHECK (format IN ('ndjson', 'parquet'))
);
COMMENT ON TABLE stocks_stream.pipelines IS
    'Archive pipelines: each copies one Kafka topic to S3 as NDJSON or Parquet objects. Managed with create_pipeline(), alter_pipeline(), start_pipeline(), stop_pipeline(), drop_pipeline().';
COMMENT ON COLUMN stocks_stream.pipelines.name IS 'Pipeline name; also names the Kafka consumer group stocks_stream.<name>.';
COMMENT ON COLUMN stocks_stream.pipelines.topic IS 'Kafka topic archived.';
COMMENT ON COLUMN stocks_stream.pipelines.bucket IS 'S3 bucket the objects go to (created when missing).';
COMMENT ON COLUMN stocks_stream.pipelines.key_prefix IS
    'Key prefix: objects are <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first offset>-<last offset>.ndjson[.gz]; the same key always holds the same bytes.';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_messages IS 'An object is written once it holds this many messages.';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_bytes IS 'An object is written before it would pass this many bytes; also the bound on what one worker buffers.';
COMMENT ON COLUMN stocks_stream.pipelines.batch_max_age_ms IS 'An object is written once its oldest message has waited this long.';
COMMENT ON COLUMN stocks_stream.pipelines.gzip IS 'Whether objects are gzip-compressed (.ndjson.gz).';
COMMENT ON COLUMN stocks_stream.pipelines.workers IS 'Number of archive workers (Kafka consumers in the group) for this pipeline.';
COMMENT ON COLUMN stocks_stream.pipelines.realtime IS 'Whether the worker loads each object into silver (load_bronze) right after archiving it.';
COMMENT ON COLUMN stocks_stream.pipelines.running IS 'Whether the launcher keeps the workers running.';
COMMENT ON COLUMN stocks_stream.pipelines.generation IS 'Bumped by alter_pipeline(); running workers of an older generation are restarted.';
COMMENT ON COLUMN stocks_stream.pipelines.format IS
    'What objects hold: ''ndjson'' (one message value per line, .ndjson[.gz]) or ''parquet'' (one row per message with its topic, partition, offset, timestamp, key, headers and value, ZSTD, .parquet).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipelines', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipelines_pipeline_id_seq', '');

CREATE TABLE stocks_stream.offsets (
    pipeline_id integer NOT NULL REFERENCES stocks_stream.pipelines ON DELETE CASCADE,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, topic, partition)
);
COMMENT ON TABLE stocks_stream.offsets IS
    'The next Kafka offset to archive per pipeline partition: the source of truth the workers resume from. Advanced in the same transaction as the manifest row, after the object is in S3.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.offsets', '');

CREATE TABLE stocks_stream.pipeline_topics (
    pipeline_id integer NOT NULL REFERENCES stocks_stream.pipelines ON DELETE CASCADE,
    topic       text NOT NULL,
    topic_id    text,
    key_topic   text NOT NULL,
    adopted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, topic)
);
COMMENT ON TABLE stocks_stream.pipeline_topics IS
    'Which incarnation of its topic a pipeline archives: Kafka''s topic id, and the topic folder of its object keys (the topic for the first one a pipeline sees, <topic>~<topic id> after a re-creation). A worker that finds another topic id holds its partitions until reset_pipeline_offsets().';
COMMENT ON COLUMN stocks_stream.pipeline_topics.topic_id IS 'Kafka''s topic id (as kafka-topics --describe prints it); NULL when the Kafka client could not tell.';
COMMENT ON COLUMN stocks_stream.pipeline_topics.key_topic IS 'The topic folder of the objects'' keys, also manifest.topic and silver''s source_topic.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.pipeline_topics', '');

CREATE TABLE stocks_stream.manifest (
    object_id     bigserial PRIMARY KEY,
    pipeline      text NOT NULL,
    bucket        text NOT NULL,
    object_key    text NOT NULL,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    first_offset  bigint NOT NULL,
    last_offset   bigint NOT NULL,
    message_count bigint NOT NULL,
    bytes         bigint NOT NULL,
    etag          text NOT NULL,
    compressed    boolean NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, object_key),
    CHECK (last_offset >= first_offset AND message_count > 0),
    loaded_at         timestamptz,
    load_error        text,
    load_attempts     integer NOT NULL DEFAULT 0,
    last_load_attempt timestamptz
);
COMMENT ON TABLE stocks_stream.manifest IS
    'One row per archived S3 object (bronze). Line N of an object holds the message at offset first_offset + N.';
COMMENT ON COLUMN stocks_stream.manifest.bytes IS 'Size of the object as stored (after gzip when compressed).';
COMMENT ON COLUMN stocks_stream.manifest.loaded_at IS 'When load_bronze() loaded the object into silver; NULL while pending.';
COMMENT ON COLUMN stocks_stream.manifest.load_error IS 'Why the last load attempt failed (S3 error, corrupt gzip, ...); retried by the next load_bronze().';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.manifest', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.manifest_object_id_seq', '');
CREATE INDEX manifest_unloaded_idx ON stocks_stream.manifest (object_id) WHERE loaded_at IS NULL;
-- api.pipeline_health counts each pipeline's objects waiting for a load and
-- those whose load failed: index probes, not reads of the whole manifest
CREATE INDEX manifest_pending_idx ON stocks_stream.manifest (pipeline) WHERE loaded_at IS NULL;
CREATE INDEX manifest_load_error_idx ON stocks_stream.manifest (pipeline) WHERE load_error IS NOT NULL;

-- ---------------------------------------------------------------------------
-- No offset is skipped in silence: the offsets an archive pipeline skips
-- (records deleted by retention before they were archived, a consumer
-- group offset moved ahead by something else, a re-created topic, a reset)
-- are recorded as gaps, counted in api.pipeline_health and served by
-- api.archive_gaps.  A re-created topic is told from the old one by Kafka's
-- topic id: its objects go to a topic folder of their own,
-- <topic>~<topic id>, so they never overwrite nor are confused with the old
-- topic's objects of the same offsets.
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.archive_gaps (
    gap_id       bigserial PRIMARY KEY,
    pipeline     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    from_offset  bigint NOT NULL,
    to_offset    bigint NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('retention', 'group offset moved', 'topic re-created', 'reset')),
    detail       text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (from_offset >= 0 AND to_offset >= from_offset)
);
CREATE INDEX archive_gaps_pipeline_idx ON stocks_stream.archive_gaps (pipeline, recorded_at);
COMMENT ON TABLE stocks_stream.archive_gaps IS
    'Offsets an archive pipeline skipped, each range recorded in the transaction that moved its stored offset past them: records deleted by retention before they were archived, a consumer group offset moved ahead by something else, a re-created topic, reset_pipeline_offsets().';
COMMENT ON COLUMN stocks_stream.archive_gaps.pipeline IS 'Pipeline name.';
COMMENT ON COLUMN stocks_stream.archive_gaps.topic IS 'Topic as the manifest and silver name it: the Kafka topic, or <topic>~<topic id> for a re-created topic.';
COMMENT ON COLUMN stocks_stream.archive_gaps.from_offset IS 'First offset skipped.';
COMMENT ON COLUMN stocks_stream.archive_gaps.to_offset IS 'Last offset skipped (inclusive).';
COMMENT ON COLUMN stocks_stream.archive_gaps.reason IS 'retention, group offset moved, topic re-created or reset.';
COMMENT ON COLUMN stocks_stream.archive_gaps.detail IS 'What the worker or the reset saw (watermarks, committed offset, start asked for).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.archive_gaps', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.archive_gaps_gap_id_seq', '');

-- ---------------------------------------------------------------------------
-- Ingest sources (Finnhub and the simulator -> Kafka)
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.sources (
    source_id        serial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    kind             text NOT NULL CHECK (kind IN ('simulator', 'finnhub_quotes', 'finnhub_trades')),
    symbols          text[] NOT NULL,
    topic            text NOT NULL,
    poll_interval_ms integer NOT NULL DEFAULT 60000,
    options          jsonb NOT NULL DEFAULT '{}',
    running          boolean NOT NULL DEFAULT false,
    generation       integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.sources IS
    'Ingest sources: each runs one worker that produces market data to a Kafka topic. Managed with create_source(), alter_source(), start_source(), stop_source(), drop_source().';
COMMENT ON COLUMN stocks_stream.sources.kind IS 'simulator (built-in market simulator), finnhub_quotes (REST /quote polling) or finnhub_trades (trade WebSocket).';
COMMENT ON COLUMN stocks_stream.sources.symbols IS 'Symbols to fetch, subscribe to, or simulate.';
COMMENT ON COLUMN stocks_stream.sources.topic IS 'Kafka topic produced to; the message key is the symbol.';
COMMENT ON COLUMN stocks_stream.sources.poll_interval_ms IS 'finnhub_quotes: how often each symbol is polled (one cycle over all symbols).';
COMMENT ON COLUMN stocks_stream.sources.options IS 'Kind-specific options; see stocks_stream.create_source().';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.sources', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.sources_source_id_seq', '');

-- ---------------------------------------------------------------------------
-- Silver: typed, validated, deduplicated records loaded from bronze
-- ---------------------------------------------------------------------------
-- Prices and volumes are double precision: Finnhub sends binary floating
-- point numbers, the loader stores exactly the doubles it received (no
-- rounding to a scale), and aggregates over millions of rows are far
-- cheaper than numeric.  Times are timestamptz in UTC.
CREATE TABLE stocks_stream.quotes (
    symbol           text NOT NULL,
    quote_time       timestamptz NOT NULL,
    price            double precision NOT NULL CHECK (price > 0),
    change           double precision,
    change_pct       double precision,
    day_high         double precision NOT NULL,
    day_low          double precision NOT NULL,
    day_open         double precision NOT NULL,
    prev_close       double precision NOT NULL,
    fetched_at       timestamptz,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (day_high >= day_low)
) PARTITION BY RANGE (quote_time);
COMMENT ON TABLE stocks_stream.quotes IS 'Silver: one row per Finnhub quote loaded from bronze, partitioned by day of quote_time. Each daily partition is unique on its Kafka source (with quote_time) and indexed on (symbol, quote_time).';
COMMENT ON COLUMN stocks_stream.quotes.symbol IS 'Ticker symbol as Finnhub writes it.';
COMMENT ON COLUMN stocks_stream.quotes.quote_time IS 'Finnhub t: time of the quote (UTC).';
COMMENT ON COLUMN stocks_stream.quotes.price IS 'Finnhub c: current price.';
COMMENT ON COLUMN stocks_stream.quotes.change IS 'Finnhub d: change from the previous close.';
COMMENT ON COLUMN stocks_stream.quotes.change_pct IS 'Finnhub dp: percent change from the previous close.';
COMMENT ON COLUMN stocks_stream.quotes.day_high IS 'Finnhub h: high of the day.';
COMMENT ON COLUMN stocks_stream.quotes.day_low IS 'Finnhub l: low of the day.';
COMMENT ON COLUMN stocks_stream.quotes.day_open IS 'Finnhub o: open of the day.';
COMMENT ON COLUMN stocks_stream.quotes.prev_close IS 'Finnhub pc: previous close.';
COMMENT ON COLUMN stocks_stream.quotes.fetched_at IS 'When the ingest side fetched the quote (fetched_time).';
COMMENT ON COLUMN stocks_stream.quotes.source_topic IS 'Kafka topic the record came from.';
COMMENT ON COLUMN stocks_stream.quotes.source_partition IS 'Kafka partition the record came from.';
COMMENT ON COLUMN stocks_stream.quotes.source_offset IS 'Kafka offset of the record.';
COMMENT ON COLUMN stocks_stream.quotes.loaded_at IS 'When load_bronze() loaded the row.';
CREATE TABLE stocks_stream.trades (
    symbol           text NOT NULL,
    trade_time       timestamptz NOT NULL,
    price            double precision NOT NULL CHECK (price > 0),
    volume           double precision NOT NULL CHECK (volume >= 0),
    conditions       text[] NOT NULL DEFAULT '{}',
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (trade_time);
COMMENT ON TABLE stocks_stream.trades IS 'Silver: one row per trade loaded from bronze, partitioned by day of trade_time. Each daily partition is unique on its Kafka source (with trade_time) and indexed on (symbol, trade_time).';
COMMENT ON COLUMN stocks_stream.trades.symbol IS 'Ticker symbol (Finnhub s).';
COMMENT ON COLUMN stocks_stream.trades.trade_time IS 'Finnhub t: time of the trade, millisecond precision (UTC).';
COMMENT ON COLUMN stocks_stream.trades.price IS 'Finnhub p: trade price.';
COMMENT ON COLUMN stocks_stream.trades.volume IS 'Finnhub v: traded volume (fractional for crypto).';
COMMENT ON COLUMN stocks_stream.trades.conditions IS 'Finnhub c: trade condition codes.';
COMMENT ON COLUMN stocks_stream.trades.source_topic IS 'Kafka topic the record came from.';
COMMENT ON COLUMN stocks_stream.trades.source_partition IS 'Kafka partition the record came from.';
COMMENT ON COLUMN stocks_stream.trades.source_offset IS 'Kafka offset of the record.';
COMMENT ON COLUMN stocks_stream.trades.loaded_at IS 'When load_bronze() loaded the row.';
CREATE TABLE stocks_stream.quarantine (
    quarantine_id  bigserial PRIMARY KEY,
    bucket         text NOT NULL,
    object_key     text NOT NULL,
    line_number    bigint NOT NULL,
    raw            bytea NOT NULL,
    reason         text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, object_key, line_number)
);
COMMENT ON TABLE stocks_stream.quarantine IS 'Bronze lines that failed validation, kept byte for byte with the reason; never loaded into silver.';
COMMENT ON COLUMN stocks_stream.quarantine.bucket IS 'S3 bucket of the object.';
COMMENT ON COLUMN stocks_stream.quarantine.object_key IS 'S3 key of the object holding the line.';
COMMENT ON COLUMN stocks_stream.quarantine.line_number IS 'Line number in the object, from 0 (offset = first_offset + line_number).';
COMMENT ON COLUMN stocks_stream.quarantine.raw IS 'The line exactly as archived.';
COMMENT ON COLUMN stocks_stream.quarantine.reason IS 'Why the line was refused.';
COMMENT ON COLUMN stocks_stream.quarantine.quarantined_at IS 'When it was quarantined.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.quarantine_quarantine_id_seq', '');

-- ---------------------------------------------------------------------------
-- load_bronze_prefix(): incremental listings for a warehouse of instances
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.listing_marks (
    bucket    text NOT NULL,
    folder    text NOT NULL,
    last_hour timestamp NOT NULL,
    listed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, folder)
);
COMMENT ON TABLE stocks_stream.listing_marks IS
    'Per archive topic folder (<prefix>/<topic>/) of a bucket, the latest dt=/hour= folder load_bronze_prefix() has listed: where an incremental listing (with a lookback) starts again.';
COMMENT ON COLUMN stocks_stream.listing_marks.last_hour IS 'The latest hour folder seen (UTC, from the object keys).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.listing_marks', '');

-- ---------------------------------------------------------------------------
-- Gold: candles and daily summaries, refreshed incrementally
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.gold_dirty (
    symbol text NOT NULL,
    minute timestamptz NOT NULL,
    PRIMARY KEY (symbol, minute)
);
COMMENT ON TABLE stocks_stream.gold_dirty IS
    'Minutes of silver data loaded since the last refresh_gold(): the watermark of the incremental refresh. load_bronze() adds to it in the same transaction as the rows; refresh_gold() consumes it.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_dirty', '');
CREATE INDEX gold_dirty_minute_idx ON stocks_stream.gold_dirty (minute);

CREATE TABLE stocks_stream.candles (
    symbol       text NOT NULL,
    interval     text NOT NULL CHECK (interval IN ('1m', '5m', '1h', '1d')),
    bucket_start timestamptz NOT NULL,
    open         double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    close        double precision NOT NULL,
    volume       double precision,
    vwap         double precision,
    sample_count integer NOT NULL,
    built_from   text NOT NULL CHECK (built_from IN ('trades', 'quotes')),
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, bucket_start)
);
COMMENT ON TABLE stocks_stream.candles IS
    'Gold: OHLC candles per symbol and interval (1m, 5m, 1h: UTC buckets; 1d: the symbol''s exchange day, see stocks_stream.exchanges), from trades where the bucket has trades (volume and VWAP real), otherwise from quote prices (volume and VWAP NULL). Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.candles.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.candles.interval IS 'Candle width: 1m, 5m, 1h or 1d.';
COMMENT ON COLUMN stocks_stream.candles.bucket_start IS 'Start of the bucket (UTC); for 1d, midnight of the exchange day in its time zone.';
COMMENT ON COLUMN stocks_stream.candles.open IS 'Price of the earliest sample by event time.';
COMMENT ON COLUMN stocks_stream.candles.high IS 'Highest price in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.low IS 'Lowest price in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.close IS 'Price of the latest sample by event time.';
COMMENT ON COLUMN stocks_stream.candles.volume IS 'Traded volume; NULL for a candle built from quotes.';
COMMENT ON COLUMN stocks_stream.candles.vwap IS 'Volume-weighted average price; NULL when built from quotes or with no volume.';
COMMENT ON COLUMN stocks_stream.candles.sample_count IS 'Trades (or quotes) in the bucket.';
COMMENT ON COLUMN stocks_stream.candles.built_from IS 'trades or quotes.';
COMMENT ON COLUMN stocks_stream.candles.refreshed_at IS 'When refresh_gold() last computed the candle.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.candles', '');
CREATE INDEX candles_interval_start_idx ON stocks_stream.candles (interval, bucket_start);

CREATE TABLE stocks_stream.daily_summary (
    symbol       text NOT NULL,
    day          date NOT NULL,
    open         double precision NOT NULL,
    close        double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    change       double precision NOT NULL,
    change_pct   double precision,
    volatility   double precision,
    volume       double precision,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, day)
);
COMMENT ON TABLE stocks_stream.daily_summary IS 'Gold: one row per symbol and exchange day (in the time zone of the symbol''s exchange), from the day''s candles. Maintained by refresh_gold().';
COMMENT ON COLUMN stocks_stream.daily_summary.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.daily_summary.day IS 'Exchange day (its date in the exchange''s time zone; UTC for crypto).';
COMMENT ON COLUMN stocks_stream.daily_summary.open IS 'First price of the day by event time.';
COMMENT ON COLUMN stocks_stream.daily_summary.close IS 'Last price of the day by event time.';
COMMENT ON COLUMN stocks_stream.daily_summary.high IS 'Highest price of the day.';
COMMENT ON COLUMN stocks_stream.daily_summary.low IS 'Lowest price of the day.';
COMMENT ON COLUMN stocks_stream.daily_summary.change IS 'close - open.';
COMMENT ON COLUMN stocks_stream.daily_summary.change_pct IS '(close - open) / open * 100.';
COMMENT ON COLUMN stocks_stream.daily_summary.volatility IS 'Sample standard deviation of the day''s 1-minute log returns (close to close); NULL with fewer than two returns.';
COMMENT ON COLUMN stocks_stream.daily_summary.volume IS 'Traded volume of the day; NULL when the day had only quotes.';
COMMENT ON COLUMN stocks_stream.daily_summary.refreshed_at IS 'When refresh_gold() last computed the row.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.daily_summary', '');
CREATE INDEX daily_summary_day_idx ON stocks_stream.daily_summary (day);

-- The 1-minute log returns of each hour, summed: what a day's volatility
-- (their sample standard deviation over the exchange day) is combined from
-- without reading the day's 1m candles again.  Kept by refresh_gold() with
-- the 1h candles; a day whose hours are not all here (hours refreshed
-- before 0.3.0, or a day that does not start on a whole hour) is computed
-- from its 1m candles.
CREATE TABLE stocks_stream.hour_returns (
    symbol      text NOT NULL,
    hour        timestamptz NOT NULL,
    returns     integer NOT NULL,
    sum_r       double precision NOT NULL,
    sum_r2      double precision NOT NULL,
    first_close double precision NOT NULL,
    last_close  double precision NOT NULL,
    PRIMARY KEY (symbol, hour)
);
COMMENT ON TABLE stocks_stream.hour_returns IS
    'Gold (internal): per symbol and UTC hour, the 1-minute log returns within the hour (count, sum, sum of squares) and the hour''s first and last 1m close, from which refresh_gold() combines a day''s volatility. Maintained by refresh_gold() with the 1h candles.';
COMMENT ON COLUMN stocks_stream.hour_returns.hour IS 'Start of the hour (UTC), as the 1h candle''s bucket_start.';
COMMENT ON COLUMN stocks_stream.hour_returns.returns IS 'Returns between consecutive 1m candles of the hour (minutes with candles less one).';
COMMENT ON COLUMN stocks_stream.hour_returns.sum_r IS 'Sum of those log returns.';
COMMENT ON COLUMN stocks_stream.hour_returns.sum_r2 IS 'Sum of their squares.';
COMMENT ON COLUMN stocks_stream.hour_returns.first_close IS 'Close of the hour''s first 1m candle.';
COMMENT ON COLUMN stocks_stream.hour_returns.last_close IS 'Close of the hour''s last 1m candle.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.hour_returns', '');

-- ---------------------------------------------------------------------------
-- Buckets that cannot be computed
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.gold_errors (
    symbol          text NOT NULL,
    target          text NOT NULL CHECK (target IN ('1m', '5m', '1h', '1d', 'daily_summary')),
    bucket_start    timestamptz NOT NULL,
    sqlstate        text NOT NULL,
    error           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, target, bucket_start)
);
COMMENT ON TABLE stocks_stream.gold_errors IS
    'Candles and daily summaries refresh_gold() could not compute (e.g. a numeric overflow from absurd values in silver), with the error. Their dirty minutes stay in gold_dirty, so every refresh retries them; a row disappears once its bucket computes. Every other bucket refreshes regardless.';
COMMENT ON COLUMN stocks_stream.gold_errors.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.gold_errors.target IS 'Candle interval (1m, 5m, 1h, 1d) or daily_summary.';
COMMENT ON COLUMN stocks_stream.gold_errors.bucket_start IS 'Start of the bucket (for daily_summary: of the exchange day).';
COMMENT ON COLUMN stocks_stream.gold_errors.sqlstate IS 'SQLSTATE of the error.';
COMMENT ON COLUMN stocks_stream.gold_errors.error IS 'Error message.';
COMMENT ON COLUMN stocks_stream.gold_errors.attempts IS 'Refreshes that failed on it.';
COMMENT ON COLUMN stocks_stream.gold_errors.first_failed_at IS 'First failure.';
COMMENT ON COLUMN stocks_stream.gold_errors.last_failed_at IS 'Latest failure.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_errors', '');

-- ---------------------------------------------------------------------------
-- Latest quote per symbol, kept by refresh_gold()
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.latest_quotes (
    symbol           text PRIMARY KEY,
    quote_time       timestamptz NOT NULL,
    price            double precision NOT NULL,
    change           double precision,
    change_pct       double precision,
    day_high         double precision NOT NULL,
    day_low          double precision NOT NULL,
    day_open         double precision NOT NULL,
    prev_close       double precision NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    refreshed_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.latest_quotes IS 'Gold: the latest quote of each symbol (by quote time, then Kafka partition and offset), kept by refresh_gold() from the minutes loaded since the last refresh.';
COMMENT ON COLUMN stocks_stream.latest_quotes.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.latest_quotes.quote_time IS 'Time of the quote (UTC).';
COMMENT ON COLUMN stocks_stream.latest_quotes.price IS 'Current price.';
COMMENT ON COLUMN stocks_stream.latest_quotes.change IS 'Change from the previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.change_pct IS 'Percent change from the previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_high IS 'High of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_low IS 'Low of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.day_open IS 'Open of the day.';
COMMENT ON COLUMN stocks_stream.latest_quotes.prev_close IS 'Previous close.';
COMMENT ON COLUMN stocks_stream.latest_quotes.source_partition IS 'Kafka partition of the quote (tie-break).';
COMMENT ON COLUMN stocks_stream.latest_quotes.source_offset IS 'Kafka offset of the quote (tie-break).';
COMMENT ON COLUMN stocks_stream.latest_quotes.refreshed_at IS 'When refresh_gold() last changed the row.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.latest_quotes', '');

-- ---------------------------------------------------------------------------
-- Exchanges: which time zone a symbol's trading day follows
-- ---------------------------------------------------------------------------
-- A symbol is mapped by stocks_stream.symbol_exchanges when it has a row
-- there, otherwise to the exchange of lowest priority whose symbol_pattern
-- (a regular expression) matches it.  The two built-in exchanges are US
-- equities (America/New_York, every symbol) and crypto (UTC, symbols written
-- EXCHANGE:PAIR as Finnhub writes them, e.g. BINANCE:BTCUSDT).  Built-in rows
-- are fixed (the install script makes them, so a restore could not keep an
-- edited copy); add exchanges of a lower priority number or map symbols to
-- override them.
CREATE TABLE stocks_stream.exchanges (
    exchange       text PRIMARY KEY CHECK (exchange ~ '^[A-Za-z0-9_]{1,32}$'),
    time_zone      text NOT NULL
        CHECK (pg_catalog.timezone(time_zone, timestamptz '2000-01-01 00:00:00+00') IS NOT NULL),
    symbol_pattern text NOT NULL CHECK ('' ~ symbol_pattern OR true),
    priority       integer NOT NULL,
    description    text,
    builtin        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE stocks_stream.exchanges IS
    'Exchanges and the time zone of their trading day: daily candles and daily summaries of a symbol cover its exchange''s calendar day in that zone (DST-correct). A symbol belongs to the exchange given in symbol_exchanges, else to the matching symbol_pattern of lowest priority. Built-in rows (US, CRYPTO) cannot be changed; add your own with a lower priority.';
COMMENT ON COLUMN stocks_stream.exchanges.exchange IS 'Exchange name, e.g. US, CRYPTO, LSE.';
COMMENT ON COLUMN stocks_stream.exchanges.time_zone IS 'IANA time zone of the exchange''s trading day, e.g. America/New_York; UTC for markets without a calendar.';
COMMENT ON COLUMN stocks_stream.exchanges.symbol_pattern IS 'Regular expression: symbols it matches belong to this exchange (unless mapped in symbol_exchanges).';
COMMENT ON COLUMN stocks_stream.exchanges.priority IS 'The matching pattern of the lowest priority wins.';
COMMENT ON COLUMN stocks_stream.exchanges.description IS 'Free text.';
COMMENT ON COLUMN stocks_stream.exchanges.builtin IS 'Made by the extension; read-only.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.exchanges', 'WHERE NOT builtin');
INSERT INTO stocks_stream.exchanges (exchange, time_zone, symbol_pattern, priority, description, builtin) VALUES
    ('CRYPTO', 'UTC', '^[A-Z0-9_]+:', 100,
     'Symbols written EXCHANGE:PAIR (Finnhub crypto and forex, e.g. BINANCE:BTCUSDT): no exchange calendar, UTC days.', true),
    ('US', 'America/New_York', '', 1000,
     'US equities (every other symbol): days in New York time.', true);
CREATE TABLE stocks_stream.symbol_exchanges (
    symbol   text PRIMARY KEY,
    exchange text NOT NULL REFERENCES stocks_stream.exchanges ON UPDATE CASCADE
);
COMMENT ON TABLE stocks_stream.symbol_exchanges IS 'Per-symbol exchange, overriding the exchanges'' symbol patterns. After a change, call stocks_stream.rebuild_daily(symbol).';
COMMENT ON COLUMN stocks_stream.symbol_exchanges.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN stocks_stream.symbol_exchanges.exchange IS 'Its exchange.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.symbol_exchanges', '');

-- ---------------------------------------------------------------------------
-- The durations of refresh_gold(), for the metrics (docs/metrics.md): one
-- row, a histogram each refresh adds itself to
-- (stocks_stream._observe_gold_refresh, sql/metrics.sql).
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.gold_refresh_seconds (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    bucket  bigint[] NOT NULL,
    sum     double precision NOT NULL DEFAULT 0,
    count   bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE stocks_stream.gold_refresh_seconds IS 'How long refresh_gold() took: a histogram of its refreshes (the metric stocks_stream_gold_refresh_seconds).';
COMMENT ON COLUMN stocks_stream.gold_refresh_seconds.bucket IS 'Refreshes per bucket of stocks_stream._gold_refresh_bounds(), not cumulative; the last one past the last bound.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.gold_refresh_seconds', '');

-- ---------------------------------------------------------------------------
-- The lake: silver days tiered to S3 as Parquet (sql/lake.sql, docs/lake.md)
-- ---------------------------------------------------------------------------
CREATE TABLE stocks_stream.lake_retention (
    table_name text PRIMARY KEY CHECK (table_name IN ('quotes', 'trades')),
    hot_days   integer NOT NULL CHECK (hot_days >= 1),
    bucket     text NOT NULL,
    prefix     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stocks_stream.lake_retention IS 'Retention policies: the newest hot_days UTC days of a silver table stay in Postgres; older days are tiered to s3://bucket/prefix/silver/ by tier_to_lake(). Set with set_lake_retention(), removed with drop_lake_retention().';
COMMENT ON COLUMN stocks_stream.lake_retention.hot_days IS 'UTC days kept in Postgres: today and the hot_days - 1 days before it.';
COMMENT ON COLUMN stocks_stream.lake_retention.prefix IS 'Key prefix of the objects: <prefix>/silver/<table>/day=YYYY-MM-DD/<table>-YYYY-MM-DD-<n>.parquet.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_retention', '');

CREATE TABLE stocks_stream.lake_days (
    table_name   text NOT NULL CHECK (table_name IN ('quotes', 'trades')),
    day          date NOT NULL,
    round        integer NOT NULL DEFAULT 1 CHECK (round >= 1),
    first_part   integer NOT NULL DEFAULT 1 CHECK (first_part >= 1),
    state        text NOT NULL CHECK (state IN ('frozen', 'exported', 'verified', 'dropped', 'failed')),
    failed_step  text CHECK (failed_step IN ('export', 'verify', 'drop')),
    reason       text,
    failed_at    timestamptz,
    dropped_rows bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);
COMMENT ON TABLE stocks_stream.lake_days IS 'Where tiering stands for each silver day it has touched: frozen (no more rows taken), exported, verified, dropped (in the lake only), or failed (still in Postgres, with the reason). A day''s partition made again by late rows starts a new round.';
COMMENT ON COLUMN stocks_stream.lake_days.round IS 'How many times the day has been tiered: each round exports the rows its partition held, into objects numbered from first_part.';
COMMENT ON COLUMN stocks_stream.lake_days.first_part IS 'The n of the first object of the current round (<table>-YYYY-MM-DD-<n>.parquet).';
COMMENT ON COLUMN stocks_stream.lake_days.failed_step IS 'The step that failed: export, verify or drop; the next tier_to_lake() redoes it.';
COMMENT ON COLUMN stocks_stream.lake_days.reason IS 'Why the step failed (a verification names the symbol and the counts).';
COMMENT ON COLUMN stocks_stream.lake_days.dropped_rows IS 'Rows of the day dropped from Postgres, all rounds.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_days', '');

CREATE TABLE stocks_stream.lake_objects (
    lake_object_id      bigserial PRIMARY KEY,
    table_name          text NOT NULL CHECK (table_name IN ('quotes', 'trades')),
    day                 date NOT NULL,
    bucket              text NOT NULL,
    object_key          text NOT NULL,
    row_count           bigint NOT NULL,
    bytes               bigint NOT NULL,
    written_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    iceberg_snapshot_id bigint,
    round               integer NOT NULL DEFAULT 1,
    part                integer CHECK (part >= 1),
    UNIQUE (bucket, object_key),
    UNIQUE (table_name, day, part)
);
COMMENT ON TABLE stocks_stream.lake_objects IS 'One row per Parquet object tier_to_lake() wrote to S3 for a silver day. A day leaves Postgres only when every object of it is verified and registered in an Iceberg snapshot.';
COMMENT ON COLUMN stocks_stream.lake_objects.verified_at IS 'When the object was read back from S3 and matched the day in Postgres (rows and checksum per symbol).';
COMMENT ON COLUMN stocks_stream.lake_objects.iceberg_snapshot_id IS 'The Iceberg snapshot that registered the object; NULL until then.';
COMMENT ON COLUMN stocks_stream.lake_objects.round IS 'The round of the day (lake_days.round) that wrote it.';
COMMENT ON COLUMN stocks_stream.lake_objects.part IS 'n of <table>-YYYY-MM-DD-<n>.parquet (NULL for an object tier_to_lake() did not write).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_objects', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_objects_lake_object_id_seq', '');

CREATE TABLE stocks_stream.lake_object_symbols (
    lake_object_id bigint NOT NULL REFERENCES stocks_stream.lake_objects ON DELETE CASCADE,
    symbol         text NOT NULL,
    row_count      bigint NOT NULL,
    checksum       bigint NOT NULL,
    PRIMARY KEY (lake_object_id, symbol)
);
COMMENT ON TABLE stocks_stream.lake_object_symbols IS 'Rows and checksum per symbol of each lake object, as written; verification recomputes both from the object and from the partition.';
COMMENT ON COLUMN stocks_stream.lake_object_symbols.checksum IS 'Sum (modulo 2^64, as a signed bigint) of a 64-bit hash of each row''s values (src/lake/silver_object.c).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_object_symbols', '');

-- ---------------------------------------------------------------------------
-- api: the row type of /rpc/candle_series
-- ---------------------------------------------------------------------------
CREATE TYPE api.candle_point AS (symbol text, "interval" text, bucket_start timestamptz, open numeric,
    high numeric, low numeric, close numeric, volume numeric, vwap numeric, sample_count bigint, filled boolean);
COMMENT ON TYPE api.candle_point IS 'One candle of /rpc/candle_series.';
COMMENT ON COLUMN api.candle_point.symbol IS 'Ticker symbol.';
COMMENT ON COLUMN api.candle_point."interval" IS 'Candle width asked for: 1m, 5m, 15m, 30m, 1h, 4h, 1d or 1w.';
COMMENT ON COLUMN api.candle_point.bucket_start IS 'Start of the candle (UTC); 1d and 1w start at midnight of the exchange day.';
COMMENT ON COLUMN api.candle_point.open IS 'First price; the previous close for a filled candle.';
COMMENT ON COLUMN api.candle_point.high IS 'Highest price; the previous close for a filled candle.';
COMMENT ON COLUMN api.candle_point.low IS 'Lowest price; the previous close for a filled candle.';
COMMENT ON COLUMN api.candle_point.close IS 'Last price; the previous close for a filled candle.';
COMMENT ON COLUMN api.candle_point.volume IS 'Traded volume; 0 for a filled candle, null for one built from quotes.';
COMMENT ON COLUMN api.candle_point.vwap IS 'Volume-weighted average price; null without trades.';
COMMENT ON COLUMN api.candle_point.sample_count IS 'Trades (or quotes) in the bucket; 0 for a filled candle.';
COMMENT ON COLUMN api.candle_point.filled IS 'true for a bucket without data, filled from the previous close.';

-- ---------------------------------------------------------------------------
-- The lake's Iceberg catalog (docs/lake.md, "Iceberg tables"): the schema
-- stocks_stream_lake holds exactly the two tables of Iceberg's JDBC catalog,
-- with the columns and keys Java's JdbcCatalog and pyiceberg's SqlCatalog
-- make (schema v1), so Spark, Trino and pyiceberg use them as they are,
-- pointed at this schema.  The commit records tie each snapshot of those
-- tables to the objects it registered, exactly once.
-- ---------------------------------------------------------------------------
CREATE SCHEMA stocks_stream_lake;
COMMENT ON SCHEMA stocks_stream_lake IS
    'stocks_stream lake: the Iceberg JDBC/SQL catalog of the bronze and silver Iceberg tables (catalog name stocks_stream).';
CREATE TABLE stocks_stream_lake.iceberg_tables (
    catalog_name               varchar(255) NOT NULL,
    table_namespace            varchar(255) NOT NULL,
    table_name                 varchar(255) NOT NULL,
    metadata_location          varchar(1000),
    previous_metadata_location varchar(1000),
    iceberg_type               varchar(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
COMMENT ON TABLE stocks_stream_lake.iceberg_tables IS
    'Iceberg JDBC catalog: one row per table, pointing at its current metadata file on S3 (written by scripts/lake-commit).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream_lake.iceberg_tables', '');
CREATE TABLE stocks_stream_lake.iceberg_namespace_properties (
    catalog_name   varchar(255) NOT NULL,
    namespace      varchar(255) NOT NULL,
    property_key   varchar(255) NOT NULL,
    property_value varchar(1000),
    PRIMARY KEY (catalog_name, namespace, property_key)
);
COMMENT ON TABLE stocks_stream_lake.iceberg_namespace_properties IS
    'Iceberg JDBC catalog: the namespaces (bronze, silver) and their properties.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream_lake.iceberg_namespace_properties', '');

CREATE TABLE stocks_stream.lake_commits (
    commit_id       bigserial PRIMARY KEY,
    table_namespace text NOT NULL CHECK (table_namespace IN ('bronze', 'silver')),
    table_name      text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    snapshot_id     bigint UNIQUE,
    committed_at    timestamptz,
    CHECK ((snapshot_id IS NULL) = (committed_at IS NULL))
);
COMMENT ON TABLE stocks_stream.lake_commits IS
    'One row per batch of objects registered in an Iceberg table: claimed first, then committed as the snapshot whose summary property stocks-stream.commit-id names this row.';
COMMENT ON COLUMN stocks_stream.lake_commits.snapshot_id IS
    'The Iceberg snapshot that registered the batch; NULL while claimed and not yet known to be committed (the next scripts/lake-commit looks it up or commits it).';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commits', '');
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commits_commit_id_seq', '');
CREATE INDEX lake_commits_pending_idx ON stocks_stream.lake_commits (commit_id) WHERE snapshot_id IS NULL;
CREATE TABLE stocks_stream.lake_commit_objects (
    bucket     text NOT NULL,
    object_key text NOT NULL,
    commit_id  bigint NOT NULL REFERENCES stocks_stream.lake_commits,
    PRIMARY KEY (bucket, object_key)
);
COMMENT ON TABLE stocks_stream.lake_commit_objects IS
    'The objects of each lake commit: an object is in one commit at most, so in one snapshot at most.';
SELECT pg_catalog.pg_extension_config_dump('stocks_stream.lake_commit_objects', '');
CREATE INDEX lake_commit_objects_commit_idx ON stocks_stream.lake_commit_objects (commit_id);
