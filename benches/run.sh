#!/usr/bin/env bash
# Benchmark of `cdpjob run` against `cdpjob sim --latency-ms 20` (not run by CI).
#
#   benches/run.sh [ROWS]          default 1000000
#
# Prints rows/s as a fraction of the latency limit (concurrency 8 × 100 rows / 20 ms =
# 40,000 rows/s), the peak RSS of the run, and the cost of the fsyncs (the same run with
# CDPJOB_UNSAFE_NO_FSYNC=1, a test-only switch).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
cargo build --release --quiet --bin cdpjob --example gen_leads
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
target/release/examples/gen_leads "$rows" bench-data/leads.csv
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
one_run() {  # $1: label, rest: env
  local label=$1; shift
  rm -rf bench-data/runs
  # Write back the generated input and the previous run's deletions now: left to the
  # kernel, that writeback lands in the middle of the measured run and delays its fsyncs.
  sync
  # As the issue states it: an in-memory simulator (no --state).
  target/release/cdpjob sim --listen 127.0.0.1:8788 --latency-ms 20 >/dev/null 2>&1 &
  local sim=$!
  sleep 1
  env "$@" /usr/bin/time -v target/release/cdpjob run --json benches/run-bench.yaml >bench-data/summary.json 2>bench-data/time.txt || true
  kill $sim; wait $sim 2>/dev/null || true
  local secs rss
  secs=$(python3 -c 'import json,sys; print(json.load(open("bench-data/summary.json"))["elapsed_secs"])')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
  awk -v l="$label" -v n="$rows" -v s="$secs" -v r="$rss" 'BEGIN { printf "%-10s %9d rows %8.1f s %9.0f rows/s  %.2f of 40000  peak RSS %.1f MB\n", l, n, s, n/s, n/s/40000, r/1024 }'
  echo "$secs" > "bench-data/secs-$label"
}
one_run fsync X=1
one_run no-fsync CDPJOB_UNSAFE_NO_FSYNC=1
awk -v a="$(cat bench-data/secs-fsync)" -v b="$(cat bench-data/secs-no-fsync)" 'BEGIN { printf "fsync cost: %.2fx the time of the same run without fsyncs\n", a/b }'
