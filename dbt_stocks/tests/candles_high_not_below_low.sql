-- A candle whose high is below its low is wrong.
select * from {{ ref('daily_candles') }}
where high < low
