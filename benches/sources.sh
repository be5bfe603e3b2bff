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
# neighbour hits all three alike. Prints the median wall time, rows/s, the median CPU time
# (user + system: what a busy machine disturbs least), peak RSS, the file's size, and wall
# and CPU time relative to plain. Deletes the generated files at the end.
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
declare -A walls cpus rss
for k in "${kinds[@]}"; do walls[$k]=""; cpus[$k]=""; rss[$k]=0; done
for _ in 1 2 3; do
  for k in "${kinds[@]}"; do
    /usr/bin/time -v "$target/release/cdpjob" plan --json "bench-data/job-$k.yaml" \
      >/dev/null 2>bench-data/time.txt
    w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' bench-data/time.txt \
        | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    c=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' bench-data/time.txt)
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
    walls[$k]="${walls[$k]} $w"; cpus[$k]="${cpus[$k]} $c"
    [ "$r" -gt "${rss[$k]}" ] && rss[$k]=$r
  done
done
printf '%-13s %9s %9s %10s %8s %8s %9s %8s %8s\n' file rows median_s rows_per_s cpu_s rss_mb size_mb wall_x cpu_x
plain=""; plain_cpu=""
for k in "${kinds[@]}"; do
  med=$(printf '%s\n' ${walls[$k]} | sort -n | sed -n 2p)
  cpu=$(printf '%s\n' ${cpus[$k]} | sort -n | sed -n 2p)
  [ -n "$plain" ] || { plain=$med; plain_cpu=$cpu; }
  size=$(stat -c %s "bench-data/leads.$k")
  awk -v k="leads.$k" -v n="$n" -v m="$med" -v c="$cpu" -v r="${rss[$k]}" -v s="$size" \
      -v p="$plain" -v pc="$plain_cpu" -v all="${walls[$k]}" \
    'BEGIN { printf "%-13s %9d %9.2f %10.0f %8.2f %8.1f %9.1f %7.2fx %7.2fx  (wall:%s s)\n", k, n, m, n/m, c, r/1024, s/1e6, m/p, c/pc, all }'
done
