-- Silver trades.
select
    symbol,
    trade_time,
    price,
    volume,
    conditions
from {{ source('stocks_stream', 'trades') }}
