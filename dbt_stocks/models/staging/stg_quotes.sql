-- Silver quotes with the fields renamed for analysis.
select
    symbol,
    quote_time,
    price,
    change,
    change_pct,
    day_high,
    day_low,
    day_open,
    prev_close,
    fetched_at
from {{ source('stocks_stream', 'quotes') }}
