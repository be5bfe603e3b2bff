#!/usr/bin/env bash
# Benchmark of `cdpjob verify` against `cdpjob sim --latency-ms 20` (not run by CI).
#
#   benches/verify.sh [ROWS]       default 10000
#
# Imports ROWS generated leads (benches/verify-bench.yaml, concurrency 8) into an in-memory
# simulator answering every request 20 ms after it arrives, then verifies every created
# customer three times (each verify a fresh one: the previous finished) and prints each
# one's lookups/s, their median and the machine's load. The latency limit is concurrency 8
# / 20 ms = 400 lookups/s; the target 0.85 of it, 340.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000}
bin=${CARGO_TARGET_DIR:-target}/release
cargo build --release --quiet --bin cdpjob --example gen_leads
mkdir -p bench-data
$bin/examples/gen_leads "$rows" bench-data/verify-leads.csv
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
rm -rf bench-data/verify-runs
$bin/cdpjob sim --listen 127.0.0.1:8789 --latency-ms 20 >/dev/null 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true; rm -rf bench-data/verify-runs bench-data/verify-leads.csv' EXIT
sleep 1
$bin/cdpjob run --json benches/verify-bench.yaml >bench-data/verify-summary.json || true
dir=$(python3 -c 'import json; print(json.load(open("bench-data/verify-summary.json"))["run_dir"])')
created=$(wc -l <"$dir/created.jsonl")
echo "imported: $created created customers in $dir"
rates=()
for i in 1 2 3; do
  start=$(date +%s.%N)
  $bin/cdpjob verify "$dir" --json >bench-data/verify-report.json
  end=$(date +%s.%N)
  read -r checked lookups matched < <(python3 -c 'import json; d=json.load(open("bench-data/verify-report.json")); print(d["checked"], d["requests"], d["matched"])')
  rate=$(awk -v n="$lookups" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n/(b-a) }')
  awk -v i="$i" -v c="$checked" -v m="$matched" -v n="$lookups" -v a="$start" -v b="$end" -v r="$rate" \
    'BEGIN { printf "verify %d: %d checked (%d match), %d lookups in %.2f s: %d lookups/s, %.2f of 400\n", i, c, m, n, b-a, r, r/400 }'
  rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
awk -v m="$median" 'BEGIN { printf "median: %d lookups/s, %.2f of the 400/s latency limit (target 340)\n", m, m/400 }'
echo "load: $(uptime)"
