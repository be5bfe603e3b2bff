#!/usr/bin/env bash
# Benchmark of a scheduled sync (`sync: changed`) against `cdpjob sim --latency-ms 20`, in
# memory (not run by CI).
#
#   benches/sync.sh [ROWS] [NIGHTS]       defaults 1000000, 10
#
# The source is `examples/gen_leads --sync-epoch K` (unique phones; night K differs from
# night K-1 in 1% of its rows) and the job `benches/sync-bench.yaml` (plan.sh's 15 mapped
# fields, concurrency 8, batch 100). Three times each, with medians and the three values:
#   1. the first run (no state: every valid row is sent), each against a fresh simulator;
#   2. `cdpjob plan` of the night-1 file, with the state the first run left;
#   3. the 1%-changed run of night 1, each from a copy of the state the first run left;
#   4. examples/sync_check: the unchanged check alone (no mapping timed), on every core at
#      once as a run's mapping threads do it, and on one thread.
# Then nights 2..NIGHTS once each, and the state's size on disk per customer after each.
# Wall times and requests: the run summaries and the simulator's /__sim/stats; peak RSS:
# /usr/bin/time -v. Targets (issue 12) are printed beside the figures. `uptime` is printed
# with each phase: on a shared machine, read the figures with the load they were taken at.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
nights=${2:-10}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin cdpjob --example gen_leads --example sync_check
cdpjob=$target/release/cdpjob
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
mkdir -p bench-data
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
port=8790
job=benches/sync-bench.yaml
runs=bench-data/sync-runs
state_dir=$runs/sync-bench/sync
saved=bench-data/sync-state-first
latency=20 concurrency=8

sim=
start_sim() {
  stop_sim
  "$cdpjob" sim --listen 127.0.0.1:$port --latency-ms $latency >/dev/null 2>&1 &
  sim=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$port/__sim/stats && return; sleep 0.1; done
  echo "the simulator did not start"; exit 1
}
stop_sim() { if [ -n "$sim" ]; then kill "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; sim=; fi; }
trap stop_sim EXIT
sim_requests() { curl -s http://127.0.0.1:$port/__sim/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_path"].get("/saas/cdp/openapi/customers/batch_create", 0))'; }
gen() { "$target/release/examples/gen_leads" "$rows" bench-data/sync-leads.csv --sync-epoch "$1"; }
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }
wall_s() {
  awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" \
    | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }'
}
# median and the three values of whitespace-separated numbers
med3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
load() { uptime | sed 's/.*load average: /load /'; }
state_bytes() { du -b "$state_dir"/*.redb | awk '{s += $1} END {print s}'; }
# customers in the state when the last run began: from its snapshot (16 + 8 header bytes, 32 a customer, 32 of checksum)
state_customers() { local s; s=$(ls -d "$runs"/sync-bench/2*/sync-snapshot.bin | sort | tail -1); echo $(( ($(stat -c %s "$s") - 56) / 32 )); }

# One measured run: $1 label. Prints "secs requests rss unchanged created".
one_run() {
  local label=$1 before after
  sync
  before=$(sim_requests)
  /usr/bin/time -v "$cdpjob" run --json "$job" >bench-data/sync-$label.json 2>bench-data/sync-time-$label.txt || true
  after=$(sim_requests)
  python3 - "$label" "$((after - before))" "$(rss_mb bench-data/sync-time-$label.txt)" <<'EOF'
import json, sys
label, requests, rss = sys.argv[1:]
s = json.load(open(f"bench-data/sync-{label}.json"))
c = s["counts"]
print(s["elapsed_secs"], requests, rss, c.get("unchanged", "?"), c["created"], s["status"])
EOF
}

echo "== $rows rows, simulator at $latency ms, concurrency $concurrency; $(load)"
gen 0

echo "-- 1. first run (no state), 3 trials, each against a fresh simulator"
first_secs=(); first_req=(); first_rss=()
for t in 1 2 3; do
  rm -rf "$runs"; start_sim
  read -r secs req rss unch created status < <(one_run first-$t)
  echo "   trial $t: $secs s, $req requests, created $created, peak RSS $rss MB ($status; $(load))"
  first_secs+=("$secs"); first_req+=("$req"); first_rss+=("$rss")
done
rm -rf "$saved"; cp -a "$state_dir" "$saved"
first_state=$(state_bytes)

gen 1
echo "-- 2. plan of the night-1 file (state present), 3 trials"
plan_secs=(); plan_rss=()
for t in 1 2 3; do
  /usr/bin/time -v "$cdpjob" plan --json "$job" >/dev/null 2>bench-data/sync-time-plan.txt
  plan_secs+=("$(wall_s bench-data/sync-time-plan.txt)"); plan_rss+=("$(rss_mb bench-data/sync-time-plan.txt)")
  echo "   trial $t: ${plan_secs[-1]} s, peak RSS ${plan_rss[-1]} MB ($(load))"
done

echo "-- 3. night 1 (1% changed), 3 trials, each from the state the first run left"
ch_secs=(); ch_req=(); ch_rss=()
for t in 1 2 3; do
  rm -rf "$runs"; mkdir -p "$runs/sync-bench"; cp -a "$saved" "$state_dir"
  read -r secs req rss unch created status < <(one_run night1-$t)
  echo "   trial $t: $secs s, $req requests, created $created, unchanged $unch, peak RSS $rss MB ($status; $(load))"
  ch_secs+=("$secs"); ch_req+=("$req"); ch_rss+=("$rss")
done

echo "-- 4. the unchanged check alone (examples/sync_check, night-0 file), 3 trials"
gen 0
check_rate=(); one_rate=()
for t in 1 2 3; do
  "$target/release/examples/sync_check" "$job" >bench-data/sync-check.txt 2>/dev/null
  check_rate+=("$(awk '/^verdict on/ {print $(NF-1)}' bench-data/sync-check.txt)")
  one_rate+=("$(awk '/^verdict \(/ {print $(NF-4)}' bench-data/sync-check.txt)")
  echo "   trial $t: $(tr '\n' ';' < bench-data/sync-check.txt) ($(load))"
done

echo "-- 5. nights 2..$nights once each, from night 1's state: the state's size"
sizes=("first run: $first_state bytes")
sizes+=("night 1: $(state_bytes) bytes")
for k in $(seq 2 "$nights"); do
  gen "$k"
  read -r secs req rss unch created status < <(one_run night$k)
  sizes+=("night $k: $(state_bytes) bytes ($secs s, $req requests, RSS $rss MB)")
done
printf '   %s\n' "${sizes[@]}"
final=$(state_bytes)
customers=$(state_customers)

echo "== summary ($(load))"
awk -v fs="$(med3 "${first_secs[@]}")" -v fr="$(med3 "${first_req[@]}")" \
    -v cs="$(med3 "${ch_secs[@]}")" -v cr="$(med3 "${ch_req[@]}")" \
    -v ps="$(med3 "${plan_secs[@]}")" -v lat=$latency -v conc=$concurrency \
    -v rate="$(med3 "${check_rate[@]}")" -v one="$(med3 "${one_rate[@]}")" \
    -v bytes="$final" -v n="$customers" -v nights="$nights" \
    -v rss1="$(printf '%s\n' "${first_rss[@]}" | sort -g | tail -1)" \
    -v rss2="$(printf '%s\n' "${ch_rss[@]}" | sort -g | tail -1)" \
    -v fall="${first_secs[*]}" -v call="${ch_secs[*]}" -v pall="${plan_secs[*]}" -v rall="${check_rate[*]}" 'BEGIN {
  send = int((cr + conc - 1) / conc) * lat / 1000   # the changed rows requests at the latency limit
  limit = 1.5 * (ps + send)
  printf "first run        %7.1f s  %6d requests                (trials %s)\n", fs, fr, fall
  printf "night 1 (1%%)     %7.1f s  %6d requests  %.3f of the first run'"'"'s time (trials %s)\n", cs, cr, cs / fs, call
  printf "plan             %7.1f s                                 (trials %s)\n", ps, pall
  printf "target: night 1 <= 1.5 x (plan %.1f s + its %d requests at %d ms x %d = %.2f s) = %.1f s: %.2f of it  %s\n", ps, cr, lat, conc, send, limit, cs / limit, (cs <= limit ? "met" : "MISSED")
  printf "target: unchanged check >= 1,000,000 rows/s: %.0f rows/s on every core at once as a run does it (trials %s), %.0f on one thread  %s\n", rate, rall, one, (rate >= 1000000 ? "met" : "MISSED")
  printf "target: <= 200 bytes/customer after %d nights: %d bytes / %d customers = %.1f  %s\n", nights, bytes, n, bytes / n, (bytes / n <= 200 ? "met" : "MISSED")
  printf "target: RSS < 150 MB at 1M: first run %.1f MB, night 1 %.1f MB (max of trials)  %s\n", rss1, rss2, (rss1 < 150 && rss2 < 150 ? "met" : "MISSED")
}'
