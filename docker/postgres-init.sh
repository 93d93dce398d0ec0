#!/bin/bash
# First start of the container: the stocks database, the extension, and the
# extension's settings (secrets from the environment, readable by the server only).
set -euo pipefail
mkdir -p /etc/stocks_stream
umask 077
cat > /etc/stocks_stream/stocks_stream.conf <<CONF
stocks_stream.kafka_brokers = '${STOCKS_KAFKA_BROKERS:-kafka:9092}'
stocks_stream.s3_endpoint = '${STOCKS_S3_ENDPOINT:-http://minio:9000}'
stocks_stream.s3_region = '${STOCKS_S3_REGION:-us-east-1}'
stocks_stream.s3_access_key = '${MINIO_ROOT_USER}'
stocks_stream.s3_secret_key = '${MINIO_ROOT_PASSWORD}'
stocks_stream.finnhub_api_key = '${FINNHUB_API_KEY:-}'
CONF
chown postgres /etc/stocks_stream/stocks_stream.conf
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE DATABASE stocks;
\connect stocks
CREATE EXTENSION stocks_stream;
ALTER ROLE stocks_stream_authenticator PASSWORD '${PGRST_AUTHENTICATOR_PASSWORD}';
SQL
