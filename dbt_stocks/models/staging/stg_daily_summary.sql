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
    volume
from {{ source('stocks_stream', 'daily_summary') }}
