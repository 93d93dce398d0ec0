-- The three biggest gainers and losers of each day by percent change.
{{ config(materialized='incremental', unique_key='mover_key') }}

with ranked as (
    select
        day,
        symbol,
        change_pct,
        rank() over (partition by day order by change_pct desc) as gain_rank,
        rank() over (partition by day order by change_pct asc) as loss_rank
    from {{ ref('stg_daily_summary') }}
    where
        change_pct is not null
        {% if is_incremental() %}
            and day >= (select coalesce(max(done.day), date '1970-01-01') from {{ this }} as done)
        {% endif %}
)

select
    day,
    'gainer' as direction,
    gain_rank as rank,
    symbol,
    change_pct,
    day::text || '|gainer|' || gain_rank::text || '|' || symbol as mover_key
from ranked
where gain_rank <= 3
union all
select
    day,
    'loser' as direction,
    loss_rank as rank,
    symbol,
    change_pct,
    day::text || '|loser|' || loss_rank::text || '|' || symbol as mover_key
from ranked
where loss_rank <= 3
