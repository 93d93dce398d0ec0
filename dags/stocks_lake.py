"""Every hour: tier the silver days past their retention policy to the lake
(docs/lake.md).  CALL stocks_stream.tier_to_lake() freezes, exports and
verifies each day due, committing each step on its own, so the task is
safe to rerun and to kill: a rerun resumes where the last one stopped.  A
day leaves Postgres only once every object of it is registered in an
Iceberg snapshot, so the run registers the verified objects
(scripts/lake-commit, stocks_common.py) and then tiers again, which drops
the days now registered: one run takes a day due all the way to the lake.

The procedure commits, so the task runs with autocommit (a CALL inside a
transaction block could not).  Connection: AIRFLOW_CONN_STOCKS_PG (conn id
``stocks_pg``), a member of stocks_stream_operator.
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG

from stocks_common import CONN_ID, lake_commit_task

with DAG(
    dag_id="stocks_lake",
    description="silver days past retention -> Parquet in S3 (tier_to_lake)",
    schedule="17 * * * *",
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=15),
    },
    tags=["stocks_stream"],
) as dag:
    tier_to_lake = SQLExecuteQueryOperator(
        task_id="tier_to_lake",
        conn_id=CONN_ID,
        sql="CALL stocks_stream.tier_to_lake()",
        autocommit=True,
    )
    # the same call: the days lake_commit registered are dropped now
    drop_registered = SQLExecuteQueryOperator(
        task_id="drop_registered",
        conn_id=CONN_ID,
        sql="CALL stocks_stream.tier_to_lake()",
        autocommit=True,
    )

    tier_to_lake >> lake_commit_task() >> drop_registered
