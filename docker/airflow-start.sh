#!/bin/bash
# Airflow's connection to the stocks database (as stocks_airflow) and dbt's
# password (as stocks_dbt), from the compose secrets airflow_password and
# dbt_password: they are in no file of the image and no variable of the
# compose file; this start hands them to Airflow's own entrypoint.
set -euo pipefail
secrets=${STOCKS_SECRETS_DIR:-/run/secrets}
pw=$(python -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read().rstrip("\n"), safe=""))' \
	"$secrets/airflow_password")
export AIRFLOW_CONN_STOCKS_PG="postgres://stocks_airflow:$pw@${STOCKS_PG_HOST:-postgres}:5432/stocks"
DBT_PGPASSWORD=$(cat "$secrets/dbt_password")
export DBT_PGPASSWORD
exec /entrypoint "$@"
