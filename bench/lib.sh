# bench/lib.sh — what the benchmark scripts share.  Source it from a script
# in bench/ (it starts the stack, so source it after `set -euo pipefail`):
#
#   bench_topic_create TOPIC...   new 4-partition topics (BENCH_PARTITIONS=N for
#                                 N), deleted when the script exits
#   bench_bucket BUCKET...        S3 buckets the script writes, dropped (objects
#                                 and all) when the script exits
#   bench_on_exit 'COMMAND'       more clean-up to run at exit (before the topics go)
#
# It sets ROOT, PY (the test virtualenv's python), OUT (a scratch folder in
# the stack's data folder) and RUN (a run id for names), exports the stack's
# addresses (scripts/stack env), and cds to ROOT.  At exit, whatever ended
# the script, the clean-up commands run, the buckets are dropped and the
# topics are deleted; a bucket or topic that could not be removed is
# reported and makes the exit status non-zero.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/stack start >/dev/null 2>&1
eval "$(scripts/stack env)"
export PGOPTIONS="-c client_min_messages=warning"
PY="$STOCKS_STREAM_VENV/bin/python"
OUT="$STOCKS_STREAM_STACK/bench"
mkdir -p "$OUT"
RUN=$(date +%s)

BENCH_TOPICS=()
BENCH_BUCKETS=()
BENCH_EXIT=()

bench_topic_create() {
	BENCH_TOPICS+=("$@")
	"$PY" "$ROOT/bench/topics.py" create "$@"
}

bench_bucket() { BENCH_BUCKETS+=("$@"); }

bench_on_exit() { BENCH_EXIT+=("$1"); }

bench_exit() {
	local rc=$? cmd
	set +e
	for cmd in "${BENCH_EXIT[@]}"; do
		eval "$cmd"
	done
	if [ ${#BENCH_BUCKETS[@]} -gt 0 ]; then
		"$PY" "$ROOT/bench/buckets.py" drop "${BENCH_BUCKETS[@]}" || rc=1
	fi
	if [ ${#BENCH_TOPICS[@]} -gt 0 ]; then
		"$PY" "$ROOT/bench/topics.py" delete "${BENCH_TOPICS[@]}" || rc=1
	fi
	exit "$rc"
}
trap bench_exit EXIT
