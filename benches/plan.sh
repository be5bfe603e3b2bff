#!/usr/bin/env bash
# Benchmark of `cdpjob plan` on generated CSVs (not run by CI).
#
#   benches/plan.sh [ROWS...]        default: 100000 1000000
#
# For each size: generates bench-data/leads.csv (15 columns), runs
# `cdpjob plan --json benches/plan-bench.yaml` three times under /usr/bin/time -v, and
# prints the median wall time, rows/s and the peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
cargo build --release --quiet --bin cdpjob --example gen_leads
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
printf '%10s %10s %12s %12s\n' rows median_s rows_per_s peak_rss_mb
for n in "${sizes[@]}"; do
  target/release/examples/gen_leads "$n" bench-data/leads.csv
  walls=(); rss=0
  for _ in 1 2 3; do
    /usr/bin/time -v target/release/cdpjob plan --json benches/plan-bench.yaml \
      >/dev/null 2>bench-data/time.txt
    w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' bench-data/time.txt \
        | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
    walls+=("$w"); [ "$r" -gt "$rss" ] && rss=$r
  done
  med=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n 2p)
  awk -v n="$n" -v m="$med" -v r="$rss" 'BEGIN { printf "%10d %10.2f %12.0f %12.1f\n", n, m, n/m, r/1024 }'
done
