#!/usr/bin/env bash
# Benchmark of `cdpjob run` against `cdpjob sim --latency-ms 20` (not run by CI).
#
#   benches/run.sh [-c CONCURRENCY] [-n TRIALS] [--no-fsync] [--bin PATH] [--sim-bin PATH]
#                  [--port P] [ROWS]
#                                              defaults: -c 8, -n 3, --port 8788, ROWS 1000000
#
# Runs `benches/run-bench.yaml` (the 15-field mapping of `benches/plan-bench.yaml`, batch
# 100) with `api.concurrency` set to CONCURRENCY, TRIALS times, and prints for each trial
# and for the median:
#   - rows/s (created rows over the run's elapsed time) and its share of the latency limit
#     (CONCURRENCY × 100 rows / 20 ms: 40,000 rows/s at 8, 160,000 at 32);
#   - the client's CPU seconds (user + system) and CPU-ms per 1,000 rows;
#   - the simulator's CPU seconds over the run and its CPU per request;
#   - the peak RSS of `cdpjob run`.
# The client is pinned to core 0 and the simulator to core 1 (`taskset`), so the figures
# do not depend on who wins the scheduler: each has one core, as in a one-CPU pod.
# `--no-fsync` runs with CDPJOB_UNSAFE_NO_FSYNC=1 (a switch for measurement only: it drops
# every fsync). `--bin` measures another build of cdpjob against the same simulator, and
# `--sim-bin` runs another build's simulator (both default to this tree's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
conc=8 trials=3 rows=1000000 bin="" sim_bin="" port=8788 extra_env=(X=1)
while [ $# -gt 0 ]; do
  case $1 in
    -c) conc=$2; shift 2 ;;
    -n) trials=$2; shift 2 ;;
    --no-fsync) extra_env=(CDPJOB_UNSAFE_NO_FSYNC=1); shift ;;
    --bin) bin=$2; shift 2 ;;
    --sim-bin) sim_bin=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) rows=$1; shift ;;
  esac
done
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin cdpjob --example gen_leads
client=${bin:-$target/release/cdpjob}
sim_bin=${sim_bin:-$target/release/cdpjob}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
command -v taskset >/dev/null || { echo "needs taskset (apt-get install util-linux)"; exit 2; }
[ "$(nproc --all)" -ge 2 ] || { echo "needs 2 cores to pin client and simulator apart"; exit 2; }
mkdir -p bench-data
[ -f bench-data/leads.csv ] && [ "$(wc -l <bench-data/leads.csv)" -eq $((rows + 1)) ] \
  || "$target/release/examples/gen_leads" "$rows" bench-data/leads.csv
# The job, with its concurrency, beside the data (its paths are relative to it).
sed -e "s/^  concurrency: .*/  concurrency: $conc/" -e "s/127.0.0.1:8788/127.0.0.1:$port/" \
    -e 's|\.\./bench-data/leads\.csv|leads.csv|' -e 's|\.\./bench-data/runs|runs|' \
    benches/run-bench.yaml >bench-data/run-bench-c$conc.yaml
export NXCLOUD_ACCESS_KEY=cdpjob-sim NXCLOUD_ACCESS_SECRET=cdpjob-sim-secret
ticks=$(getconf CLK_TCK)
cpu_of() {  # CPU seconds (user + system) a live process has used
  awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"
}
limit=$((conc * 100 * 50))
printf '%-7s %9s %9s %6s %10s %12s %10s %12s %9s\n' trial rows rows/s share client_cpu ms/1000rows sim_cpu sim_us/req rss_mb
: >bench-data/run-trials
for t in $(seq 1 "$trials"); do
  rm -rf bench-data/runs
  # Write back the generated input and the previous run's deletions now: left to the
  # kernel, that writeback lands in the middle of the measured run and delays its fsyncs.
  sync
  # As the issue states it: an in-memory simulator (no --state), on its own core.
  taskset -c 1 "$sim_bin" sim --listen 127.0.0.1:$port --latency-ms 20 >/dev/null 2>&1 &
  sim=$!
  for _ in $(seq 50); do
    curl -s -o /dev/null http://127.0.0.1:$port/__sim/stats && break; sleep 0.1
  done
  sim_before=$(cpu_of $sim)
  env "${extra_env[@]}" taskset -c 0 /usr/bin/time -v "$client" run --json \
    bench-data/run-bench-c$conc.yaml >bench-data/summary.json 2>bench-data/time.txt || true
  sim_after=$(cpu_of $sim)
  requests=$(curl -s http://127.0.0.1:$port/__sim/stats \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["requests"])')
  kill $sim; wait $sim 2>/dev/null || true
  python3 - "$t" "$limit" "$sim_before" "$sim_after" "$requests" >>bench-data/run-trials <<'EOF'
import json, re, sys
t, limit, s0, s1, req = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = json.load(open("bench-data/summary.json"))
time = open("bench-data/time.txt").read()
def field(name):
    return float(re.search(re.escape(name) + r": ([0-9.]+)", time).group(1))
created = s["counts"]["created"]
secs = s["elapsed_secs"]
cpu = field("User time (seconds)") + field("System time (seconds)")
rss = field("Maximum resident set size (kbytes)") / 1024
sim = s1 - s0
print(t, created, created / secs, created / secs / limit, cpu, cpu / created * 1e6,
      sim, sim / max(req, 1) * 1e6, rss)
EOF
  awk '{ printf "%-7s %9d %9.0f %6.3f %10.2f %12.3f %10.2f %12.0f %9.1f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9 }' \
    <(tail -1 bench-data/run-trials)
done
# The median of each column on its own (with 3 trials, the middle value), and the spread.
python3 - "$conc" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open("bench-data/run-trials")]
cols = list(zip(*rows))
med = [statistics.median(c) for c in cols]
print("%-7s %9d %9.0f %6.3f %10.2f %12.3f %10.2f %12.0f %9.1f" % ("median", *med))
lo, hi = min(cols[1]), max(cols[1])
print("concurrency %s: rows/s %.0f..%.0f over %d trials (±%.1f%% of the median)"
      % (sys.argv[1], lo, hi, len(rows), (hi - lo) / 2 / med[1] * 100))
EOF
