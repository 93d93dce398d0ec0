#!/bin/bash
# The offline postgres:15-bookworm's entrypoint: what the official image's
# docker-entrypoint.sh does for this project.  On the first start (an empty
# PGDATA) initdb with POSTGRES_USER and POSTGRES_PASSWORD (or *_FILE), a
# server on the Unix socket only (with the CMD's -c options) for the
# /docker-entrypoint-initdb.d scripts, then the server itself.
set -Eeuo pipefail
file_env() {
	local var=$1 file_var=${1}_FILE
	if [ -n "${!file_var:-}" ]; then
		export "$var"="$(<"${!file_var}")"
	fi
}
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER
	export POSTGRES_USER=${POSTGRES_USER:-postgres}
	[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "error: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2; exit 1; }
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA" \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	shift
	pg_ctl -D "$PGDATA" -w -o "$(printf '%q ' "$@") -c listen_addresses=''" start
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
		*.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-psqlrc -f "$f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	set -- postgres "$@"
fi
exec "$@"
