-- Gold daily summaries, as the marts read them.
select
    symbol,
    day,
    open,
    high,
    low,
    close,
    change,
    change_pct,
    volatility,
    volume,
    symbol || '|' || day::text as summary_key
from {{ source('stocks_stream', 'daily_summary') }}
