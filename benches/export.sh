#!/usr/bin/env bash
# Benchmark of a query export: `cdpjob run` paging every customer out of `cdpjob sim` into
# a CSV file, 50 customers per page (the API's maximum). Not run by CI.
#
#   benches/export.sh [ROWS] [LATENCY_MS]      defaults 100000 and 0
#
# Imports ROWS generated leads into a simulator (state in bench-data/), then exports them
# twice: with fsyncs (as always) and without (CDPJOB_UNSAFE_NO_FSYNC=1, a test-only switch).
# Prints customers/s, the peak RSS of the export, and the ratio of the two times.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
latency=${2:-0}
cargo build --release --quiet --bin cdpjob --example gen_leads
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
target/release/examples/gen_leads "$rows" bench-data/leads.csv
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
rm -rf bench-data/runs bench-data/exports bench-data/sim.jsonl*
start_sim() {  # $1: latency in ms
  target/release/cdpjob sim --listen 127.0.0.1:8788 --latency-ms "$1" --state bench-data/sim.jsonl >/dev/null 2>&1 &
  sim=$!
  sleep 1
}
start_sim 0
trap 'kill $sim 2>/dev/null || true' EXIT
target/release/cdpjob run --json benches/run-bench.yaml >bench-data/import.json || true
# A fresh simulator for the export: it reads the import back from its state file, as the
# export that follows an import in another process would.
kill $sim; wait $sim 2>/dev/null || true
start_sim "$latency"
# Generated leads repeat a phone now and then, and the API merges those: count customers.
customers=$(python3 -c 'import glob, json; print(len({json.loads(l)["customer_id"] for f in glob.glob("bench-data/runs/run-bench/*/created.jsonl") for l in open(f)}))')
one_export() {  # $1: label, rest: env
  local label=$1; shift
  rm -rf bench-data/runs/export-bench
  env "$@" /usr/bin/time -v target/release/cdpjob run --json benches/export-bench.yaml >bench-data/export.json 2>bench-data/time.txt
  local secs rss rows pages
  read -r secs rows pages < <(python3 -c 'import json; s=json.load(open("bench-data/export.json")); print(s["elapsed_secs"], s["rows"], s["pages"])')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
  [ "$rows" = "$customers" ] || { echo "exported $rows of $customers customers"; exit 1; }
  awk -v l="$label" -v n="$rows" -v p="$pages" -v s="$secs" -v r="$rss" -v lat="$latency" 'BEGIN { printf "%-9s %8d customers %5d pages latency %3d ms %7.1f s %8.0f customers/s  peak RSS %.1f MB\n", l, n, p, lat, s, n/s, r/1024 }'
  echo "$secs" > "bench-data/secs-export-$label"
}
one_export fsync X=1
one_export no-fsync CDPJOB_UNSAFE_NO_FSYNC=1
awk -v a="$(cat bench-data/secs-export-fsync)" -v b="$(cat bench-data/secs-export-no-fsync)" 'BEGIN { printf "fsync cost: %.2fx the time of the same export without fsyncs\n", a/b }'
