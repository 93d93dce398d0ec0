-- Per-symbol volatility and relative volatility over the recent trading
-- days (what the Python pipeline's gold_treechart reported): the standard
-- deviation of daily returns, and that divided by the average over symbols.
with returns as (
    select
        symbol,
        day,
        close / nullif(lag(close) over (partition by symbol order by day), 0) - 1 as daily_return
    from {{ ref('daily_candles') }}
),

per_symbol as (
    select
        symbol,
        count(daily_return) as return_days,
        stddev_samp(daily_return) as volatility
    from returns
    group by symbol
)

select
    symbol,
    return_days,
    volatility,
    volatility / nullif(avg(volatility) over (), 0) as relative_volatility
from per_symbol
