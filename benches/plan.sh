#!/usr/bin/env bash
# Benchmark of `cdpjob plan` on generated CSVs (not run by CI).
#
#   benches/plan.sh [-n TRIALS] [--bin PATH] [ROWS...]     defaults: -n 3, 100000 1000000
#
# For each size: generates bench-data/leads.csv (15 columns), runs
# `cdpjob plan --json benches/plan-bench.yaml` TRIALS times under /usr/bin/time -v, and
# prints the median wall time, rows/s (over the median wall time), the median CPU seconds
# (user + system) and CPU µs per row, the peak RSS, and the load average before the first
# trial. The machine is shared: CPU time is the figure that does not depend on who else runs.
# `--bin` measures another build of cdpjob on the same input.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=3 bin="" sizes=()
while [ $# -gt 0 ]; do
  case $1 in
    -n) trials=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin cdpjob --example gen_leads
cdpjob=${bin:-$target/release/cdpjob}
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%10s %9s %10s %8s %11s %12s %7s\n' rows median_s rows_per_s cpu_s cpu_us_row peak_rss_mb load1
for n in "${sizes[@]}"; do
  [ -f bench-data/leads.csv ] && [ "$(wc -l <bench-data/leads.csv)" -eq $((n + 1)) ] \
    || "$target/release/examples/gen_leads" "$n" bench-data/leads.csv
  load=$(cut -d' ' -f1 /proc/loadavg)
  walls=() cpus=() rss=0
  for _ in $(seq 1 "$trials"); do
    /usr/bin/time -v "$cdpjob" plan --json benches/plan-bench.yaml \
      >/dev/null 2>bench-data/time.txt
    w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' bench-data/time.txt \
        | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    c=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' bench-data/time.txt)
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
    walls+=("$w") cpus+=("$c"); [ "$r" -gt "$rss" ] && rss=$r
  done
  med=$(printf '%s\n' "${walls[@]}" | median)
  cpu=$(printf '%s\n' "${cpus[@]}" | median)
  awk -v n="$n" -v m="$med" -v c="$cpu" -v r="$rss" -v l="$load" \
    'BEGIN { printf "%10d %9.2f %10.0f %8.2f %11.2f %12.1f %7s\n", n, m, n/m, c, c*1e6/n, r/1024, l }'
  echo "    trials: wall ${walls[*]} s; cpu ${cpus[*]} s"
done
