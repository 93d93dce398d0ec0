#!/bin/sh
# PostgREST logs in as stocks_stream_authenticator with the password of the
# compose secret authenticator_password: libpq reads it from PGPASSWORD, so
# it is in no file of the image and no variable of the compose file.
set -eu
PGPASSWORD=$(cat "${PGRST_PASSWORD_FILE:-/run/secrets/authenticator_password}")
export PGPASSWORD
exec postgrest /etc/postgrest.conf
