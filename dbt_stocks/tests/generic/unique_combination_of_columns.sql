{#
    No two rows share the same values of the columns named (a compound key).
    The same test, name and arguments as dbt_utils.unique_combination_of_columns:
    dbt deps cannot reach the dbt package hub or GitHub from these machines,
    so the project carries it; with the package installed, prefix the test
    name with `dbt_utils.` in the ymls.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as rows_with_these_values
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
