-- The close lies between the low and the high of its day.
select * from {{ ref('daily_candles') }}
where close < low or close > high
