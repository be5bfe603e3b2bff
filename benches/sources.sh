#!/usr/bin/env bash
# Benchmark of `cdpjob plan` over the same CSV plain, gzip- and zstd-compressed (not run
# by CI).
#
#   benches/sources.sh [ROWS]        default: 1000000
#
# Generates bench-data/leads.csv (15 columns, examples/gen_leads.rs), compresses it with
# `gzip -6` and `zstd -3` (the tools' defaults), and runs `cdpjob plan --json` of
# benches/plan-bench.yaml — pointed at each file in turn, nothing else changed — three times
# each under /usr/bin/time -v, interleaved (plain, gz, zst, plain, …) so that a noisy
# neighbour hits all three alike. Prints the median wall time, rows/s, peak RSS, the file's
# size and the time relative to plain. Deletes the generated files at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin cdpjob --example gen_leads
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
command -v zstd >/dev/null || { echo "needs zstd (apt-get install zstd)"; exit 2; }
mkdir -p bench-data
trap 'rm -f bench-data/leads.csv bench-data/leads.csv.gz bench-data/leads.csv.zst bench-data/job-*.yaml bench-data/time.txt' EXIT
"$target/release/examples/gen_leads" "$n" bench-data/leads.csv
gzip -6 -k -f bench-data/leads.csv
zstd -3 -q -f bench-data/leads.csv -o bench-data/leads.csv.zst
kinds=(csv csv.gz csv.zst)
for k in "${kinds[@]}"; do
  # The job's directory is bench-data/ now: its source path is relative to it.
  sed "s#path: ../bench-data/leads.csv#path: leads.$k#" benches/plan-bench.yaml \
    > "bench-data/job-$k.yaml"
done
declare -A walls rss
for k in "${kinds[@]}"; do walls[$k]=""; rss[$k]=0; done
for _ in 1 2 3; do
  for k in "${kinds[@]}"; do
    /usr/bin/time -v "$target/release/cdpjob" plan --json "bench-data/job-$k.yaml" \
      >/dev/null 2>bench-data/time.txt
    w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' bench-data/time.txt \
        | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
    walls[$k]="${walls[$k]} $w"; [ "$r" -gt "${rss[$k]}" ] && rss[$k]=$r
  done
done
printf '%-10s %10s %10s %12s %12s %10s %8s\n' file rows median_s rows_per_s peak_rss_mb size_mb vs_plain
plain=""
for k in "${kinds[@]}"; do
  med=$(printf '%s\n' ${walls[$k]} | sort -n | sed -n 2p)
  [ -n "$plain" ] || plain=$med
  size=$(stat -c %s "bench-data/leads.$k")
  awk -v k="leads.$k" -v n="$n" -v m="$med" -v r="${rss[$k]}" -v s="$size" -v p="$plain" -v all="${walls[$k]}" \
    'BEGIN { printf "%-10s %10d %10.2f %12.0f %12.1f %10.1f %7.2fx  (runs:%s s)\n", k, n, m, n/m, r/1024, s/1e6, m/p, all }'
done
