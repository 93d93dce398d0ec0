-- Simple and exponential moving averages (5 and 20 trading days) of the
-- daily close.  EMA_n = close * k + EMA_n(previous day) * (1 - k), k = 2/(n+1),
-- seeded with the first close.  Averages are rounded to 6 decimals.
with recursive days as (
    select
        symbol,
        day,
        close,
        row_number() over (partition by symbol order by day) as n
    from {{ ref('daily_candles') }}
),

ema as (
    select
        symbol,
        day,
        close,
        n,
        close as ema_5,
        close as ema_20
    from days
    where n = 1
    union all
    select
        d.symbol,
        d.day,
        d.close,
        d.n,
        d.close * (2.0 / 6) + e.ema_5 * (1 - 2.0 / 6) as ema_5,
        d.close * (2.0 / 21) + e.ema_20 * (1 - 2.0 / 21) as ema_20
    from days as d
    inner join ema as e on d.symbol = e.symbol and d.n = e.n + 1
)

select
    symbol,
    day,
    close,
    round(avg(close) over (partition by symbol order by day rows between 4 preceding and current row)::numeric, 6)
        as sma_5,
    round(avg(close) over (partition by symbol order by day rows between 19 preceding and current row)::numeric, 6)
        as sma_20,
    round(ema_5::numeric, 6) as ema_5,
    round(ema_20::numeric, 6) as ema_20,
    symbol || '|' || day::text as ma_key
from ema
