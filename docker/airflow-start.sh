#!/bin/bash
# Airflow's connection to the stocks database (as stocks_airflow), dbt's
# password (as stocks_dbt) and the lake commit's S3 keys, from the compose
# secrets airflow_password, dbt_password, minio_root_user and
# minio_root_password: they are in no file of the image and no variable of
# the compose file; this start hands them to Airflow's own entrypoint.
set -euo pipefail
secrets=${STOCKS_SECRETS_DIR:-/run/secrets}
pw=$(python -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read().rstrip("\n"), safe=""))' \
	"$secrets/airflow_password")
export AIRFLOW_CONN_STOCKS_PG="postgres://stocks_airflow:$pw@${STOCKS_PG_HOST:-postgres}:5432/stocks"
DBT_PGPASSWORD=$(cat "$secrets/dbt_password")
export DBT_PGPASSWORD
S3_ACCESS_KEY=$(cat "$secrets/minio_root_user")
S3_SECRET_KEY=$(cat "$secrets/minio_root_password")
export S3_ACCESS_KEY S3_SECRET_KEY
exec /entrypoint "$@"
