-- Daily candlestick of the last `trading_days` trading days of each symbol.
{{ config(materialized='incremental', unique_key=['symbol', 'day'], on_schema_change='fail') }}

with ranked as (
    select
        s.*,
        dense_rank() over (partition by s.symbol order by s.day desc) as days_back
    from {{ ref('stg_daily_summary') }} as s
    {% if is_incremental() %}
        where
            s.day >= (select coalesce(max(done.day), date '1970-01-01') from {{ this }} as done)
            - {{ var('trading_days') }}
    {% endif %}
)

select
    symbol,
    day,
    open,
    high,
    low,
    close,
    volume,
    symbol || '|' || day::text as candle_key
from ranked
where days_back <= {{ var('trading_days') }}
