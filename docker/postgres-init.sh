#!/bin/bash
# First start of the container: the stocks database, the extension, its
# settings, and its credentials.  Every password comes from a file (the
# compose file's secrets, under /run/secrets), never from a variable.
# Credentials go to a file readable by the server only, named by
# stocks_stream.secrets_file: never to a setting, which members of
# pg_read_all_settings (pg_monitor) could read.  It and the extension's
# settings live in the data folder (the pg-data volume), so a new container
# on the same volume keeps them.
set -euo pipefail
SECRETS=${STOCKS_SECRETS_DIR:-/run/secrets}
for name in minio_root_user minio_root_password authenticator_password exporter_password airflow_password dbt_password; do
	[ -s "$SECRETS/$name" ] || { echo "postgres-init: the secret $name is missing or empty in $SECRETS" >&2; exit 1; }
done
# secret NAME: the content of one secret file; finnhub_api_key may be absent
# or empty (the simulator needs no key)
secret() { cat "$SECRETS/$1" 2>/dev/null || true; }
umask 077
cat > "$PGDATA/stocks_stream.secrets" <<SECRETS
s3_access_key = $(secret minio_root_user)
s3_secret_key = $(secret minio_root_password)
finnhub_api_key = $(secret finnhub_api_key)
SECRETS
cat > "$PGDATA/stocks_stream.conf" <<CONF
stocks_stream.kafka_brokers = '${STOCKS_KAFKA_BROKERS:-kafka:9092}'
stocks_stream.s3_endpoint = '${STOCKS_S3_ENDPOINT:-http://minio:9000}'
stocks_stream.s3_region = '${STOCKS_S3_REGION:-us-east-1}'
stocks_stream.secrets_file = '$PGDATA/stocks_stream.secrets'
CONF
echo "include_if_exists = 'stocks_stream.conf'" >> "$PGDATA/postgresql.conf"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE DATABASE stocks;
\connect stocks
CREATE EXTENSION stocks_stream;
SQL
# the login roles of Airflow and dbt (none a superuser)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d stocks -f /usr/local/share/stocks_stream/login-roles.sql
# each login role's password, passed as a psql variable (quoted by psql)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d stocks \
    -v authenticator_pw="$(secret authenticator_password)" -v exporter_pw="$(secret exporter_password)" \
    -v airflow_pw="$(secret airflow_password)" -v dbt_pw="$(secret dbt_password)" <<'SQL'
ALTER ROLE stocks_stream_authenticator PASSWORD :'authenticator_pw';
ALTER ROLE stocks_stream_exporter PASSWORD :'exporter_pw';
ALTER ROLE stocks_airflow PASSWORD :'airflow_pw';
ALTER ROLE stocks_dbt PASSWORD :'dbt_pw';
SQL
