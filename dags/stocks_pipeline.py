"""Every five minutes: load new bronze objects into silver, refresh gold,
register the lake's new Parquet objects in its Iceberg tables, build the
dbt models, and fail the run if the quarantine grew too much.

All the work happens in the database through stocks_stream's SQL functions,
so every task is safe to rerun: load_bronze() never loads an object twice,
refresh_gold() only recomputes what changed, scripts/lake-commit registers
each object in one Iceberg snapshot once (docs/lake.md), dbt models are
idempotent.

The connection and the lake commit are stocks_common.py's.  The dbt
executable and project come from STOCKS_STREAM_DBT (default ``dbt``) and
STOCKS_STREAM_DBT_PROJECT (default: ../dbt_stocks next to this file).  The quarantine threshold is the Airflow Variable ``stocks_quarantine_threshold``
(default 100 lines an hour).  It reaches the database as a bound parameter
cast to integer, never as SQL text: a variable that is not an integer fails
the check with "invalid input syntax for type integer" and runs nothing.
"""
from __future__ import annotations

import datetime as dt
import os

from airflow.providers.common.sql.operators.sql import SQLCheckOperator, SQLExecuteQueryOperator
from airflow.providers.common.sql.sensors.sql import SqlSensor
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

from stocks_common import CONN_ID, PG_ENV, REPO, lake_commit_task


class BoundSQLCheckOperator(SQLCheckOperator):
    """SQLCheckOperator whose bound parameters are templated too, so a value
    from an Airflow Variable is passed as a parameter, not pasted into SQL."""

    template_fields = (*SQLCheckOperator.template_fields, "parameters")


DBT = os.environ.get("STOCKS_STREAM_DBT", "dbt")
DBT_PROJECT = os.environ.get("STOCKS_STREAM_DBT_PROJECT", os.path.join(REPO, "dbt_stocks"))

with DAG(
    dag_id="stocks_pipeline",
    description="bronze -> silver -> gold -> dbt, with a quarantine check",
    schedule="*/5 * * * *",
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=5),
    },
    tags=["stocks_stream"],
) as dag:
    wait_for_bronze = SqlSensor(
        task_id="wait_for_bronze",
        conn_id=CONN_ID,
        sql="SELECT count(*) FROM stocks_stream.manifest WHERE loaded_at IS NULL",
        poke_interval=20,
        timeout=240,
        mode="reschedule",
        soft_fail=True,   # nothing new within the run's window: skip the rest
    )
    load_bronze = SQLExecuteQueryOperator(
        task_id="load_bronze",
        conn_id=CONN_ID,
        sql="SELECT * FROM stocks_stream.load_bronze()",
        show_return_value_in_logs=True,
    )
    refresh_gold = SQLExecuteQueryOperator(
        task_id="refresh_gold",
        conn_id=CONN_ID,
        sql="SELECT stocks_stream.refresh_gold()",
        show_return_value_in_logs=True,
    )
    lake_commit = lake_commit_task()
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command=f'"{DBT}" build --project-dir "{DBT_PROJECT}" --profiles-dir "{DBT_PROJECT}"',
        env=PG_ENV,
        append_env=True,
    )
    quarantine_check = BoundSQLCheckOperator(
        task_id="quarantine_check",
        conn_id=CONN_ID,
        sql="SELECT count(*) <= %(threshold)s::integer "
            "FROM stocks_stream.quarantine WHERE quarantined_at > now() - interval '1 hour'",
        parameters={"threshold": "{{ var.value.get('stocks_quarantine_threshold', '100') }}"},
    )

    wait_for_bronze >> load_bronze >> refresh_gold >> lake_commit >> dbt_build >> quarantine_check
