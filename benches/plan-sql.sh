#!/usr/bin/env bash
# Benchmark of `cdpjob plan` over a PostgreSQL table (not run by CI).
#
#   benches/plan-sql.sh [ROWS]       default: 1000000
#
# Starts a private PostgreSQL in a temporary directory (as nobody when run as root), fills
# `leads` (7 columns: int, text ×4, timestamptz, numeric) with ROWS rows, runs
# `cdpjob plan --json benches/plan-sql-bench.yaml` three times under /usr/bin/time -v and
# prints the median wall time, rows/s and the peak RSS; then stops and removes the server.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "needs PostgreSQL (apt-get install postgresql)"; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
cargo build --release --quiet --bin cdpjob
cdpjob="${CARGO_TARGET_DIR:-target}/release/cdpjob"
dir=$(mktemp -d); as=()
if [ "$(id -u)" -eq 0 ]; then chown 65534:65534 "$dir"; as=(setpriv --reuid=65534 --regid=65534 --clear-groups --); fi
port=$((20000 + RANDOM % 20000))
trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
echo admin > "$dir/pw"; [ ${#as[@]} -eq 0 ] || chown 65534 "$dir/pw"
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --no-sync --no-instructions --pwfile="$dir/pw" >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -h "$dir" -p "$port" -U postgres -c "CREATE ROLE bench LOGIN PASSWORD 'bench'"
psql -h "$dir" -p "$port" -U postgres -c "CREATE DATABASE crm OWNER bench"
PGPASSWORD=bench psql -h 127.0.0.1 -p "$port" -U bench -d crm -c "CREATE TABLE leads (id int PRIMARY KEY, name text, phone text, email text, city text, created_at timestamptz, score numeric(6,2));
  INSERT INTO leads SELECT i, 'Lead ' || i, '86139' || lpad(i::text, 8, '0'), 'Lead' || i || '@Example.com',
    'City ' || (i % 100), timestamptz '2024-01-01' + i * interval '1 minute', (i % 10000) / 100.0
  FROM generate_series(1, $n) i"
PGPASSWORD=bench psql -h 127.0.0.1 -p "$port" -U bench -d crm -c "VACUUM ANALYZE leads"
export DATABASE_URL="postgres://bench:bench@127.0.0.1:$port/crm"
walls=(); rss=0; t=$(mktemp)
for _ in 1 2 3; do
  /usr/bin/time -v "$cdpjob" plan --json benches/plan-sql-bench.yaml >/dev/null 2>"$t"
  w=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$t" \
      | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$t")
  walls+=("$w"); [ "$r" -gt "$rss" ] && rss=$r
done
rm -f "$t"
# What was measured: every row read and valid (the counts of one more plan).
"$cdpjob" plan --json benches/plan-sql-bench.yaml | grep -A6 '"counts"' | tr -d ' \n'; echo
med=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n 2p)
printf '%10s %10s %12s %12s\n' rows median_s rows_per_s peak_rss_mb
awk -v n="$n" -v m="$med" -v r="$rss" 'BEGIN { printf "%10d %10.2f %12.0f %12.1f\n", n, m, n/m, r/1024 }'
