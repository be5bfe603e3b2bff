#!/usr/bin/env bash
# Instructions counted by valgrind (not run by CI): exact where this VM's timings vary by
# ±10–30 %, so that a change of a few per cent shows at all.
#
#   benches/instructions.sh [sim|client] [--bin PATH] [ROWS]     defaults: sim, 20,000 rows
#
# Runs the first ROWS rows of the generated leads through `benches/run-bench.yaml` (the
# 15-field mapping, concurrency 8) against `cdpjob sim --latency-ms 20` on port 8795, with
# either the simulator (`sim`: instructions a batch_create request) or the client (`client`:
# instructions a created row) under `valgrind --tool=cachegrind`. `--bin` measures another
# build in that role (the other side is this tree's release build). Needs valgrind (apt-get
# install valgrind). Valgrind's CPU has no SHA extensions: the client's SHA-256 runs its
# portable code there and counts far more than it costs on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
who=sim rows=20000 bin=""
while [ $# -gt 0 ]; do
  case $1 in
    sim|client) who=$1; shift ;;
    --bin) bin=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) rows=$1; shift ;;
  esac
done
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 2; }
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin cdpjob --example gen_leads
tree=$target/release/cdpjob
measured=${bin:-$tree}
dir=bench-data/instructions
mkdir -p "$dir"
[ -f bench-data/leads.csv ] && [ "$(wc -l <bench-data/leads.csv)" -gt "$rows" ] \
  || "$target/release/examples/gen_leads" "$rows" bench-data/leads.csv
head -n $((rows + 1)) bench-data/leads.csv >"$dir/leads.csv"
sed -e "s/^  concurrency: .*/  concurrency: 8/" -e "s/127.0.0.1:8788/127.0.0.1:8795/" \
    -e 's|\.\./bench-data/leads\.csv|leads.csv|' -e 's|\.\./bench-data/runs|runs|' \
    benches/run-bench.yaml >"$dir/job.yaml"
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
rm -rf "$dir/runs" "$dir"/cg.out
vg=(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$dir/cg.out")
if [ $who = sim ]; then
  "${vg[@]}" "$measured" sim --listen 127.0.0.1:8795 --latency-ms 20 >/dev/null 2>"$dir/vg.err" &
else
  "$tree" sim --listen 127.0.0.1:8795 --latency-ms 20 >/dev/null 2>&1 &
fi
sim=$!
for _ in $(seq 300); do
  curl -s -o /dev/null http://127.0.0.1:8795/__sim/stats && break; sleep 0.1
done
if [ $who = sim ]; then
  "$tree" run --json "$dir/job.yaml" >"$dir/summary.json" 2>/dev/null || true
else
  "${vg[@]}" "$measured" run --json "$dir/job.yaml" >"$dir/summary.json" 2>"$dir/vg.err" || true
fi
requests=$(curl -s http://127.0.0.1:8795/__sim/stats \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
kill -INT $sim; wait $sim 2>/dev/null || true
python3 - "$who" "$requests" "$dir" <<'PY'
import json, sys
who, requests, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ir = next(int(l.split()[1]) for l in open(d + "/cg.out") if l.startswith("summary:"))
created = json.load(open(d + "/summary.json"))["counts"]["created"]
if who == "sim":
    print(f"simulator: {ir:,} instructions over {requests} requests: {ir / requests:,.0f} a request")
else:
    print(f"client: {ir:,} instructions for {created:,} created rows: {ir / created:,.0f} a row")
PY
