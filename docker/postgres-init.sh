#!/bin/bash
# First start of the container: the stocks database, the extension, its
# settings, and its credentials.  Credentials go to a file readable by the
# server only, named by stocks_stream.secrets_file: never to a setting, which
# members of pg_read_all_settings (pg_monitor) could read.
set -euo pipefail
mkdir -p /etc/stocks_stream
umask 077
cat > /etc/stocks_stream/stocks_stream.secrets <<SECRETS
s3_access_key = ${MINIO_ROOT_USER}
s3_secret_key = ${MINIO_ROOT_PASSWORD}
finnhub_api_key = ${FINNHUB_API_KEY:-}
SECRETS
cat > /etc/stocks_stream/stocks_stream.conf <<CONF
stocks_stream.kafka_brokers = '${STOCKS_KAFKA_BROKERS:-kafka:9092}'
stocks_stream.s3_endpoint = '${STOCKS_S3_ENDPOINT:-http://minio:9000}'
stocks_stream.s3_region = '${STOCKS_S3_REGION:-us-east-1}'
stocks_stream.secrets_file = '/etc/stocks_stream/stocks_stream.secrets'
CONF
chown postgres /etc/stocks_stream/stocks_stream.conf /etc/stocks_stream/stocks_stream.secrets
chmod 600 /etc/stocks_stream/stocks_stream.secrets
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE DATABASE stocks;
\connect stocks
CREATE EXTENSION stocks_stream;
ALTER ROLE stocks_stream_authenticator PASSWORD '${PGRST_AUTHENTICATOR_PASSWORD}';
ALTER ROLE stocks_stream_exporter PASSWORD '${METRICS_EXPORTER_PASSWORD}';
SQL
# the login roles of Airflow and dbt (none a superuser), with their passwords
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d stocks -f /usr/local/share/stocks_stream/login-roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d stocks \
    -v airflow_pw="$STOCKS_AIRFLOW_PASSWORD" -v dbt_pw="$STOCKS_DBT_PASSWORD" <<'SQL'
ALTER ROLE stocks_airflow PASSWORD :'airflow_pw';
ALTER ROLE stocks_dbt PASSWORD :'dbt_pw';
SQL
