#!/usr/bin/env bash
# Benchmark of `cdpjob plan` on a generated workbook against the same rows as CSV (not run
# by CI).
#
#   benches/plan-xlsx.sh [ROWS...]        default: 200000
#
# For each size: generates bench-data/leads.csv (gen_leads, 15 columns) and the same rows
# as bench-data/leads.xlsx (gen_leads_xlsx: numbers, date cells, shared strings), runs
# `cdpjob plan --json` on benches/plan-bench.yaml (CSV) and benches/plan-xlsx-bench.yaml
# three times each under /usr/bin/time -v, and prints the median wall time, rows/s and the
# peak RSS. The generated files are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(200000)
cargo build --release --quiet --bin cdpjob --example gen_leads --example gen_leads_xlsx
target="${CARGO_TARGET_DIR:-target}"
mkdir -p bench-data
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
printf '%6s %10s %10s %12s %12s %10s\n' source rows median_s rows_per_s peak_rss_mb file_mb
for n in "${sizes[@]}"; do
  "$target"/release/examples/gen_leads "$n" bench-data/leads.csv
  "$target"/release/examples/gen_leads_xlsx bench-data/leads.csv bench-data/leads.xlsx
  for kind in csv xlsx; do
    job=benches/plan-bench.yaml; [ "$kind" = xlsx ] && job=benches/plan-xlsx-bench.yaml
    walls=(); rss=0
    for _ in 1 2 3; do
      /usr/bin/time -v "$target"/release/cdpjob plan --json "$job" \
        >bench-data/plan.json 2>bench-data/time.txt
      w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' bench-data/time.txt \
          | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
      r=$(awk -F': ' '/Maximum resident set size/ {print $2}' bench-data/time.txt)
      walls+=("$w"); [ "$r" -gt "$rss" ] && rss=$r
    done
    rows=$(grep -o '"rows": *[0-9]*' bench-data/plan.json | head -1 | grep -o '[0-9]*$')
    [ "$rows" = "$n" ] || { echo "plan of $kind read $rows rows, not $n"; exit 1; }
    size=$(stat -c %s "bench-data/leads.$kind")
    med=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n 2p)
    awk -v k="$kind" -v n="$n" -v m="$med" -v r="$rss" -v s="$size" \
      'BEGIN { printf "%6s %10d %10.2f %12.0f %12.1f %10.1f\n", k, n, m, n/m, r/1024, s/1e6 }'
  done
done
rm -f bench-data/leads.csv bench-data/leads.xlsx bench-data/plan.json bench-data/time.txt
