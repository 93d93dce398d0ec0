"""What stocks_stream's DAGs share: the connection id, the lake commit
(scripts/lake-commit, which registers Parquet objects in the lake's Iceberg
tables: docs/lake.md) and the libpq variables it and dbt connect with.

Connection: AIRFLOW_CONN_STOCKS_PG (conn id ``stocks_pg``), e.g.
``postgres://airflow:secret@db:5432/stocks``.  The lake commit is
STOCKS_STREAM_LAKE_COMMIT (default: ../scripts/lake-commit next to this
file); it finds its Python as that script says and S3 from S3_ENDPOINT,
S3_ACCESS_KEY, S3_SECRET_KEY and S3_REGION in the worker's environment.
"""
from __future__ import annotations

import os

from airflow.providers.standard.operators.bash import BashOperator

CONN_ID = "stocks_pg"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAKE_COMMIT = os.environ.get("STOCKS_STREAM_LAKE_COMMIT", os.path.join(REPO, "scripts", "lake-commit"))
# the libpq variables of the connection, for dbt and the lake commit
PG_ENV = {
    "PGHOST": "{{ conn.stocks_pg.host }}",
    "PGPORT": "{{ conn.stocks_pg.port or 5432 }}",
    "PGUSER": "{{ conn.stocks_pg.login }}",
    "PGPASSWORD": "{{ conn.stocks_pg.password or '' }}",
    "PGDATABASE": "{{ conn.stocks_pg.schema }}",
}


def lake_commit_task(task_id: str = "lake_commit") -> BashOperator:
    """Register every Parquet object not yet in an Iceberg snapshot (bronze
    objects of Parquet pipelines, verified objects of tiered silver days),
    each in exactly one snapshot: safe to rerun and to kill."""
    return BashOperator(task_id=task_id, bash_command=f'"{LAKE_COMMIT}"', env=PG_ENV, append_env=True)
