#!/usr/bin/env bash
# Benchmark of a query export: `cdpjob run` paging every customer out of `cdpjob sim` into a
# CSV file, 50 customers per page (the API's maximum), with `query.parallel` 1 and 8. Not
# run by CI.
#
#   benches/export.sh [CUSTOMERS] [LATENCY_MS] [PARALLEL…]     defaults 100000, 20, "1 8"
#
# The simulator is seeded with CUSTOMERS generated customers whose created_at spread over
# 30 days (SPEC §12 R16), answers every request LATENCY_MS after it arrived, and pages in
# descending id order (an order the client must not assume). For each K it prints
# customers/s, the ratio to the limit K × 50 customers per round trip, and the export's
# peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-100000}
latency=${2:-20}
shift $(( $# < 2 ? $# : 2 ))
parallels=${*:-1 8}
# CDPJOB_BIN=path skips the build and measures that binary.
if [ -z "${CDPJOB_BIN:-}" ]; then cargo build --release --quiet --bin cdpjob; fi
cdpjob=${CDPJOB_BIN:-${CARGO_TARGET_DIR:-target}/release/cdpjob}
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
rm -rf bench-data/export-runs bench-data/exports bench-data/export-sim.jsonl*
"$cdpjob" sim --listen 127.0.0.1:8789 --latency-ms "$latency" --order desc \
  --seed-customers "$customers" --seed-window "2024-01-01 00:00:00..2024-01-31 00:00:00" \
  --state bench-data/export-sim.jsonl >/dev/null 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8789/__sim/stats && break; sleep 0.2; done
for k in $parallels; do
  sed "s/parallel: 1/parallel: $k/" benches/export-bench.yaml > bench-data/export-bench-$k.yaml
  sed -i "s|\.\./bench-data|.|" bench-data/export-bench-$k.yaml
  rm -rf bench-data/export-runs/export-bench
  sync
  /usr/bin/time -v "$cdpjob" run --json bench-data/export-bench-$k.yaml \
    >bench-data/export-$k.json 2>bench-data/time-$k.txt
  read -r secs rows < <(python3 -c "import json; s=json.load(open('bench-data/export-$k.json')); print(s['elapsed_secs'], s['rows'])")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time-$k.txt)
  [ "$rows" = "$customers" ] || { echo "exported $rows of $customers customers"; exit 1; }
  awk -v k="$k" -v n="$rows" -v s="$secs" -v r="$rss" -v lat="$latency" 'BEGIN {
    limit = k * 50 * 1000 / lat
    printf "parallel %2d: %7d customers in %6.1f s = %7.0f customers/s, %.2f of the limit (%d/s), peak RSS %.1f MB\n", k, n, s, n/s, n/s/limit, limit, r/1024 }'
done
