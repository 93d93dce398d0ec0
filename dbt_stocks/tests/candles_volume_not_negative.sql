-- Volume is never negative.
select * from {{ ref('daily_candles') }}
where volume < 0
