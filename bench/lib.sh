# bench/lib.sh — what the benchmark scripts share.  Source it from a script
# in bench/ (it starts the stack, so source it after `set -euo pipefail`):
#
#   bench_topic_create TOPIC...   new 4-partition topics (BENCH_PARTITIONS=N for
#                                 N), deleted when the script exits
#   bench_bucket BUCKET...        S3 buckets the script writes, dropped (objects
#                                 and all) when the script exits
#   bench_on_exit 'COMMAND'       more clean-up to run at exit (before the topics go)
#   bench_kcat_read TOPIC         the consumer baselines: `kcat -C -e` and
#   bench_perf_read TOPIC N       librdkafka 2.8.0's `rdkafka_performance -C -e`
#                                 (partitions 0..N-1) read TOPIC to its end;
#                                 each prints its seconds
#   bench_curl_s3 N SHA256 CONFIG the curl tool's S3 requests listed in CONFIG
#                                 (curl -K: credentials, then the transfers), N at
#                                 a time, SigV4-signed with payload hash SHA256
#                                 (BENCH_EMPTY_SHA256 for GETs); prints how many
#                                 were answered 200
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

# With -e a consumer learns that a partition has ended only from a fetch
# that found nothing new, and the broker holds such a fetch for
# fetch.wait.max.ms (librdkafka's default: 500 ms): every read paid half a
# second for it (rdkafka_performance, 1,000,000 messages on 4 partitions:
# 1.27-1.28 s, with 10 ms 0.77-0.80 s).  10 ms makes the baselines stronger.
BENCH_CONSUMER_SETTINGS=(-X fetch.wait.max.ms=10)

bench_kcat_read() {
	local start end
	start=$(date +%s.%N)
	kcat -C -b "$KAFKA_BROKERS" -t "$1" -o beginning -e -q "${BENCH_CONSUMER_SETTINGS[@]}" >/dev/null
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}

bench_perf_read() {
	local start end p parts=()
	for p in $(seq 0 $(($2 - 1))); do parts+=(-p "$p"); done
	start=$(date +%s.%N)
	"$RDKAFKA_PERF" -C -b "$KAFKA_BROKERS" -t "$1" "${parts[@]}" -o beginning -e -q \
		-X enable.metrics.push=false "${BENCH_CONSUMER_SETTINGS[@]}" >/dev/null
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}

BENCH_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

bench_curl_s3() {
	curl -sS --no-progress-meter --parallel --parallel-max "$1" --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" \
		-H "x-amz-content-sha256: $2" -w '%{http_code}\n' -K "$3" | grep -c '^200$'
}

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
