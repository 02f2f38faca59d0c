#!/usr/bin/env bash
# The benchmark command (issue 6): installs its load tool (wrk), builds
# release binaries, runs every figure on loopback beside its baseline in the
# same run, and writes BENCHMARKS.md.
#
#   benches/run.sh                 # full run (~6 minutes after the build)
#   BENCH_SECONDS=3 SCALE_ACCOUNTS=1000 benches/run.sh   # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."
S=${BENCH_SECONDS:-10}
SCALE_ACCOUNTS=${SCALE_ACCOUNTS:-10000}
SCALE_MEMBERS=${SCALE_MEMBERS:-20}
SCALE_BIG=${SCALE_BIG:-100000}
SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOAD_LIMITS=$'[auth]\nattempts_per_minute_per_ip = 0\n[limits]\nrefusals_per_minute = 100000000'

# Where each side runs (issue 26): the daemon (and the bare server it is
# compared with) on DAEMON_CPUS, the load generator on LOAD_CPUS, so a read
# figure does not depend on how the scheduler shares the cores between the
# server and wrk. On one core both share it. The PostgreSQL figures stay
# unpinned: there the replicas, PostgreSQL and the load share the machine,
# which is the situation they measure.
CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then
  DAEMON_CPUS=${DAEMON_CPUS:-1}; LOAD_CPUS=${LOAD_CPUS:-0}
else
  DAEMON_CPUS=${DAEMON_CPUS:-0}; LOAD_CPUS=${LOAD_CPUS:-0}
fi
PIN_DAEMON="taskset -c $DAEMON_CPUS"
PIN_LOAD="taskset -c $LOAD_CPUS"

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
# BENCH_BIN=<dir>: the admind and examples/ of another build, not built
# here (an A/B of two commits in one session: benches/analysis.md).
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release --bin admind --examples
  BIN=target/release
fi
[ -n "${BENCH_ONLY:-}" ] || cargo bench --no-run --bench hook_dispatch >/dev/null 2>&1
W=$(mktemp -d)
RESULTS=$W/results.jsonl
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# machine_line PART: the machine a part of the run was measured on (cores,
# model, memory, the load before it, the pinning), kept beside its figures.
machine_line() {
  python3 - "$1" "$DAEMON_CPUS" "$LOAD_CPUS" <<'PY'
import datetime, json, os, sys
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
# Files' inodes the kernel holds: millions left by earlier runs' mail files
# slowed file creation (and so transfers) by a tenth (benches/analysis.md).
try:
    inodes = int(open("/proc/sys/fs/inode-nr").read().split()[0])
except (OSError, ValueError, IndexError):
    inodes = None
print(json.dumps({"scenario": f"machine_{sys.argv[1]}", "cores": os.cpu_count(), "model": model,
    "memory_gib": round(mem), "load1_before": os.getloadavg()[0], "daemon_cpus": sys.argv[2],
    "load_cpus": sys.argv[3], "inodes_cached": inodes, "date": datetime.date.today().isoformat()}))
PY
}

# start_admind DIR [extra config]: starts a daemon, sets ADDR and PID.
start_admind() {
  local dir=$1
  mkdir -p "$dir/scripts"
  # The scenarios are load, not attacks: one client address signs in many
  # users and a policy may refuse many transfers (BASE_LIMITS empties this
  # for a build that predates those settings).
  printf 'public_url = "http://bench"\n[[webhooks.sources]]\nname = "crm"\nsecrets = ["%s"]\n%s\n%s\n' "$SECRET" "${BASE_LIMITS-$LOAD_LIMITS}" "${2:-}" > "$dir/admind.toml"
  local started
  started=$(date +%s%N)
  ADMIND_LOG=warn ${PIN-} $BIN/admind serve --config "$dir/admind.toml" --listen 127.0.0.1:0 --data-dir "$dir/data" \
    --mail-dir "${MAIL_DIR:-$dir/mail}" --scripts-dir "$dir/scripts" > "$dir/out" 2> "$dir/err" &
  PID=$!
  until grep -q "listening on" "$dir/out" 2>/dev/null; do
    kill -0 $PID 2>/dev/null || { echo "admind did not start:" >&2; head -5 "$dir/err" >&2; exit 1; }
    sleep 0.01
  done
  ADDR=$(sed -n 's/admind listening on //p' "$dir/out")
  until curl -sf "$ADDR/healthz" >/dev/null; do sleep 0.01; done
  STARTUP_MS=$(( ($(date +%s%N) - started) / 1000000 ))
  OPERATOR=$(cat "$dir/data/operator.token")
}

# wrk_json NAME URL [TOKEN [cookie]]: 64 connections, S seconds; appends a
# result line. With "cookie", the token goes in the console's session cookie,
# beside the CSRF cookie a browser has after its first page.
wrk_json() {
  local name=$1 url=$2 token=${3:-} how=${4:-bearer}
  local out
  if [ -n "$token" ] && [ "$how" = cookie ]; then
    out=$(${PIN:+$PIN_LOAD} wrk -t2 -c64 -d"${S}s" --latency -H "Cookie: admind_session=$token; admind_csrf=benchmarkbenchmarkbenchmarkbenchmark" "$url")
  elif [ -n "$token" ]; then
    out=$(${PIN:+$PIN_LOAD} wrk -t2 -c64 -d"${S}s" --latency -H "Authorization: Bearer $token" "$url")
  else
    out=$(${PIN:+$PIN_LOAD} wrk -t2 -c64 -d"${S}s" --latency "$url")
  fi
  python3 - "$name" "$out" >> "$RESULTS" <<'PY'
import json, re, sys
name, out = sys.argv[1], sys.argv[2]
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
print(json.dumps({"scenario": name, "rate": rate, "p50_ms": p50, "p99_ms": p99, "errors": int(non2xx.group(1)) if non2xx else 0}))
PY
}

# start_reads DIR [extra config]: a daemon with the read scenario's account
# (an owner and 19 members); sets ACC and TOK (the owner's session) too.
start_reads() {
  start_admind "$@"
  local setup
  setup=$($BIN/examples/bench setup-reads --base "$ADDR" --mail-dir "$1/mail" --operator="$OPERATOR" --members 19)
  ACC=$(echo "$setup" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account"])')
  TOK=$(echo "$setup" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
}

# page_weight: the console's first load (the Team members page, its CSS and
# htmx) as a browser gets it, gzip'd; appends a result line.
page_weight() {
  weight() { curl -s --compressed -o /dev/null -w '%{size_download}' -H "Cookie: admind_session=$TOK" "$ADDR$1"; }
  local html css js
  html=$(weight "/a/$ACC/members"); css=$(weight /assets/console.css); js=$(weight /assets/htmx.min.js)
  echo "{\"scenario\": \"console_page_weight\", \"html_bytes\": $html, \"css_bytes\": $css, \"js_bytes\": $js, \"total_bytes\": $((html + css + js))}" >> "$RESULTS"
}

# postgres_figures: admind on PostgreSQL (a throwaway cluster, as the tests
# start one) beside pgbench running the same SQL work, and reads beside sled.
postgres_figures() {
  echo "== PostgreSQL" >&2
  machine_line postgres >> "$RESULTS"
  local pg bindir url
  # Outside $W: the cluster's owner (postgres, when root) must reach it.
  pg=$(mktemp -d); chmod 755 "$pg"
  url=$(tests/postgres/cluster.sh start "$pg")
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  psql() { "$bindir/psql" -q -X "$@"; }
  # The cluster's CPU so far, in clock ticks: every live process, plus the
  # backends the postmaster has reaped (its children's times).
  pg_cpu_ticks() {
    python3 - "$(head -1 "$pg/data/postmaster.pid")" <<'PY'
import os, sys
pm = sys.argv[1]
def fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
total = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        if open(f"/proc/{pid}/comm").read().strip() != "postgres":
            continue
        f = fields(pid)
        total += int(f[11]) + int(f[12])
        if pid == pm:
            total += int(f[13]) + int(f[14])
    except (OSError, IndexError, ValueError):
        pass
print(total)
PY
  }
  # Appends the cluster's CPU per operation (µs) to the last result line.
  with_pg_cpu() {
    local before=$1 after; after=$(pg_cpu_ticks)
    python3 - "$RESULTS" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
path, before, after, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = open(path).read().splitlines()
last = json.loads(lines[-1])
ops = last.get("ops") or last.get("transactions") or 0
if ops:
    last["pg_cpu_us_per_op"] = round((after - before) * 1e6 / hz / ops, 1)
lines[-1] = json.dumps(last)
open(path, "w").write("\n".join(lines) + "\n")
PY
  }
  newdb() { psql "$url" -c "CREATE DATABASE $1" >/dev/null; echo "$url dbname=$1"; }
  pgconf() { printf '[store]\nbackend = "postgres"\nurl = "%s"\npool_size = 32\n' "$1"; }
  # pgbench: per transaction what a transfer commits (the account, an
  # audit row, two outbox rows and a hook event), each client on its own row.
  local db; db=$(newdb pgbench)
  psql "$db" -c "CREATE TABLE accounts (id int PRIMARY KEY, value jsonb NOT NULL);
    CREATE TABLE audit (seq bigserial PRIMARY KEY, at timestamptz NOT NULL, value jsonb NOT NULL);
    CREATE TABLE queue_items (queue text NOT NULL, id bigserial, value jsonb NOT NULL, PRIMARY KEY (queue, id));
    INSERT INTO accounts SELECT g, '{\"owner\": \"a\"}' FROM generate_series(1, 64) g;" >/dev/null
  cat > "$pg/transfer.sql" <<'SQL'
\set aid :client_id + 1
BEGIN;
UPDATE accounts SET value = jsonb_set(value, '{owner}', to_jsonb(md5(random()::text))) WHERE id = :aid;
INSERT INTO audit (at, value) VALUES (now(), '{"action": "owner.transfer", "actor": "user", "detail": "ownership transferred"}');
INSERT INTO queue_items (queue, value) VALUES ('outbox', '{"to": "old@bench.test", "subject": "You are no longer the owner", "body": "..."}');
INSERT INTO queue_items (queue, value) VALUES ('outbox', '{"to": "new@bench.test", "subject": "You are now the owner", "body": "..."}');
INSERT INTO queue_items (queue, value) VALUES ('hook_events', '{"event": "owner_changed", "attempts": 0}');
END;
SQL
  for c in 1 16 64; do
    local out
    local cpu0; cpu0=$(pg_cpu_ticks)
    out=$("$bindir/pgbench" -n -M prepared -c "$c" -j $((c < 2 ? c : 2)) -T "$S" -f "$pg/transfer.sql" "$db" 2>&1)
    python3 - "$c" "$out" >> "$RESULTS" <<'PY'
import json, re, sys
c, out = int(sys.argv[1]), sys.argv[2]
tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
lat = re.search(r"latency average = ([\d.]+) ms", out)
done = re.search(r"number of transactions actually processed: (\d+)", out)
print(json.dumps({"scenario": f"pgbench_transfer_{c}", "rate": tps, "mean_ms": float(lat.group(1)) if lat else None, "clients": c, "transactions": int(done.group(1)) if done else None}))
PY
    with_pg_cpu "$cpu0"
  done
  # admind on sled in the same run, the figure PostgreSQL is held to.
  for c in 1 16 64; do
    D=$W/sledt$c; MAIL_DIR=$W/sledmail$c start_admind "$D"
    $BIN/examples/bench transfers --name "sled_transfers_${c}" --base "$ADDR" --mail-dir "$W/sledmail$c" --operator="$OPERATOR" --clients "$c" --seconds "$S" >> "$RESULTS"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
  # admind: one replica, then two behind the clients (odd clients on the
  # second), same mail folder.
  for c in 1 16 64; do
    db=$(newdb transfers$c)
    D=$W/pgt$c; MAIL_DIR=$W/pgmail$c start_admind "$D" "$(pgconf "$db")"
    local cpu0; cpu0=$(pg_cpu_ticks)
    $BIN/examples/bench transfers --name "pg_transfers_${c}_1r" --base "$ADDR" --mail-dir "$W/pgmail$c" --operator="$OPERATOR" --clients "$c" --seconds "$S" >> "$RESULTS"
    with_pg_cpu "$cpu0"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    # Two replicas on a fresh database, one mail folder.
    db=$(newdb transfers${c}r2)
    D=$W/pgt${c}a; MAIL_DIR=$W/pgmail${c}r2 start_admind "$D" "$(pgconf "$db")"
    local pid1=$PID addr1=$ADDR op=$OPERATOR
    D=$W/pgt${c}b; MAIL_DIR=$W/pgmail${c}r2 start_admind "$D" "$(pgconf "$db")"
    local pid2=$PID addr2=$ADDR
    cpu0=$(pg_cpu_ticks)
    $BIN/examples/bench transfers --name "pg_transfers_${c}_2r" --base "$addr1" --base2 "$addr2" --mail-dir "$W/pgmail${c}r2" --operator="$op" --clients "$c" --seconds "$S" >> "$RESULTS"
    with_pg_cpu "$cpu0"
    kill "$pid1" "$pid2"; wait "$pid1" "$pid2" 2>/dev/null || true
  done
  # Reads on PostgreSQL (the sled figures are "owner" and "members_20").
  db=$(newdb reads)
  D=$W/pgreads; start_admind "$D" "$(pgconf "$db")"
  SETUP=$($BIN/examples/bench setup-reads --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --members 19)
  ACC=$(echo "$SETUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account"])')
  TOK=$(echo "$SETUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  wrk_json pg_owner "$ADDR/v1/accounts/$ACC/owner" "$TOK"
  wrk_json pg_members_20 "$ADDR/v1/accounts/$ACC/members" "$TOK"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  tests/postgres/cluster.sh stop "$pg"
  rm -rf "$pg"
}

# policy_figures: the cost of recording hook calls on the transfer
# benchmark (the shipped guard loaded, recording on and off), and replay
# throughput beside live dispatch.
policy_figures() {
  echo "== policy record and replay" >&2
  # Alternating, five rounds: the report takes each side's median (single
  # runs on a shared machine vary more than the effect measured).
  for round in 1 2 3 4 5; do
    for rec in true false; do
      D=$W/rec$rec$round; mkdir -p "$D/scripts"; cp scripts/owner_change_guard.rhai "$D/scripts/"
      start_admind "$D" "$(printf '[policy_record]\nenabled = %s' "$rec")"
      $BIN/examples/bench transfers --name "transfers_64_guard_record_${rec}_$round" --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --clients 64 --seconds "$S" >> "$RESULTS"
      # Records dropped (a full channel) would flatter the figure: counted.
      local dropped
      dropped=$(curl -s -H "Authorization: Bearer $OPERATOR" "$ADDR/metrics" | sed -n 's/^admind_hook_records_dropped_total //p')
      echo "{\"scenario\": \"records_dropped_${rec}_$round\", \"dropped\": ${dropped:-0}}" >> "$RESULTS"
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
  $BIN/examples/bench replay --events 20000 >> "$RESULTS"
}

# slow_policy_figures: 64 clients, each on its own account; the first
# account's before_owner_change policy spends 40 ms per call (0: no policy,
# the baseline); the figure counts the 63 others.
slow_policy_figures() {
  echo "== a slow policy on one account" >&2
  for ms in 0 40; do
    # The slow policy's loop needs more operations and time than the
    # defaults allow a policy.
    D=$W/slow$ms; start_admind "$D" "$(printf '[scripts]\nmax_operations = 1000000000\ntimeout_ms = 1000')"
    $BIN/examples/bench transfers --name "transfers_64_slow_policy_$ms" --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" \
      --clients 64 --seconds "$S" --slow-policy-ms "$ms" --scripts-dir "$D/scripts" >> "$RESULTS"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
}

# layers_figures: the read figures with each middleware layer left out in
# turn (BENCH_WITHOUT_LAYERS, issue 26), beside the whole stack and the
# bare server, pinned as the read figures are. Two rounds, alternating.
LAYERS="lane check_path body_limit frame request_id trace catch_panic deadline metrics"
layers_figures() {
  echo "== middleware layers" >&2
  machine_line layers >> "$RESULTS"
  PIN=$PIN_DAEMON
  local round variant
  for round in 1 2; do
    for variant in none $LAYERS all; do
      local without=$variant
      [ "$variant" = none ] && without=
      [ "$variant" = all ] && without=$(echo $LAYERS | tr ' ' ,)
      D=$W/layers$variant$round
      BENCH_WITHOUT_LAYERS=$without start_reads "$D"
      wrk_json "layers_owner_${variant}_$round" "$ADDR/v1/accounts/$ACC/owner" "$TOK"
      wrk_json "layers_members_${variant}_$round" "$ADDR/v1/accounts/$ACC/members" "$TOK"
      if [ "$variant" = none ]; then
        OWNER_BYTES=$(curl -s -H "Authorization: Bearer $TOK" "$ADDR/v1/accounts/$ACC/owner" | wc -c)
        MEMBERS_BYTES=$(curl -s -H "Authorization: Bearer $TOK" "$ADDR/v1/accounts/$ACC/members" | wc -c)
      fi
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
    local n
    for n in owner members; do
      local bytes=$OWNER_BYTES; [ $n = members ] && bytes=$MEMBERS_BYTES
      $PIN_DAEMON $BIN/examples/bare_server 127.0.0.1:0 "$bytes" > "$W/barel$n$round" & local bare=$!
      until grep -q listening "$W/barel$n$round" 2>/dev/null; do sleep 0.01; done
      wrk_json "layers_bare_${n}_$round" "$(sed -n 's/bare listening on //p' "$W/barel$n$round")/"
      kill $bare; wait $bare 2>/dev/null || true
    done
  done
  PIN=
}

# console_figures: the Team members page beside the API's read of the same
# members (20 members, pinned as the reads are, three alternating rounds;
# the first page of a SCALE_BIG-member account, as the scale run does),
# alone (BENCH_ONLY=console).
console_figures() {
  echo "== console pages" >&2
  machine_line console >> "$RESULTS"
  PIN=$PIN_DAEMON
  D=$W/console; start_reads "$D"
  # Three rounds, the API read and the page alternating: the ratio of
  # each round, not of two moments of a noisy machine.
  local round
  for round in 1 2 3; do
    wrk_json "console_round_api_$round" "$ADDR/v1/accounts/$ACC/members" "$TOK"
    wrk_json "console_round_page_$round" "$ADDR/a/$ACC/members" "$TOK" cookie
  done
  page_weight
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PIN=
  D=$W/consolebig; mkdir -p "$D"
  $BIN/examples/bench seed --data-dir "$D/data" --accounts 1 --members "$SCALE_MEMBERS" --big "$SCALE_BIG" > "$D/seed.json"
  local big tb
  big=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["big"])' "$D/seed.json")
  start_admind "$D"
  tb=$(curl -s "$ADDR/v1/accounts/$big/sessions" -H 'content-type: application/json' -d '{"email":"owner-big@seed.test","password":"benchmark password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  wrk_json api_big_first_50 "$ADDR/v1/accounts/$big/members?limit=50" "$tb"
  wrk_json console_big_first "$ADDR/a/$big/members" "$tb" cookie
  kill "$PID"; wait "$PID" 2>/dev/null || true
}

# transfer_round_figures: durable transfers at 64 clients in BENCH_ROUNDS
# rounds (default 5), each on a fresh daemon and followed by the batched
# sled ceiling it is divided by, unpinned as in the full run; alone
# (BENCH_ONLY=transfers). One 5-s figure of this load moves by more than
# ±15 % from run to run on a 2-core machine: the rounds give its range.
transfer_round_figures() {
  echo "== transfer rounds" >&2
  machine_line transfers >> "$RESULTS"
  local round
  for round in $(seq "${BENCH_ROUNDS:-5}"); do
    D=$W/xfer$round; start_admind "$D"
    $BIN/examples/bench transfers --name "transfers_round_64_$round" --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --clients 64 --seconds "$S" >> "$RESULTS"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    $BIN/examples/bench store --clients 64 --batched --seconds "$S" | sed "s/\"sled_batched_64\"/\"sled_batched_round_64_$round\"/" >> "$RESULTS"
  done
}

# BENCH_ONLY=hostile (or postgres, policy, slow, layers, console, transfers) runs those figures alone and keeps the
# other figures of benches/last-results.jsonl.
if [ "${BENCH_ONLY:-}" = hostile ]; then
  grep -v '"scenario": *"\(before_\)\?\(hostile\|made_up\|idle_\)' benches/last-results.jsonl > "$RESULTS" || true
elif [ "${BENCH_ONLY:-}" = postgres ]; then
  grep -v '"scenario": *"\(pg_\|pgbench_\|machine_postgres\)' benches/last-results.jsonl > "$RESULTS" || true
  postgres_figures
elif [ "${BENCH_ONLY:-}" = slow ]; then
  grep -v '"scenario": *"transfers_64_slow_policy' benches/last-results.jsonl > "$RESULTS" || true
  slow_policy_figures
elif [ "${BENCH_ONLY:-}" = layers ]; then
  grep -v '"scenario": *"\(layers_\|machine_layers\)' benches/last-results.jsonl > "$RESULTS" || true
  layers_figures
elif [ "${BENCH_ONLY:-}" = console ]; then
  grep -v '"scenario": *"\(console_round_\|console_page_weight\|api_big_first_50\|console_big_first\|machine_console\)"' benches/last-results.jsonl > "$RESULTS" || true
  console_figures
elif [ "${BENCH_ONLY:-}" = transfers ]; then
  grep -v '"scenario": *"\(transfers_round_\|sled_batched_round_\|machine_transfers\)' benches/last-results.jsonl > "$RESULTS" || true
  transfer_round_figures
elif [ "${BENCH_ONLY:-}" = policy ]; then
  grep -v '"scenario": *"\(transfers_64_guard\|records_dropped\|replay"\)' benches/last-results.jsonl > "$RESULTS" || true
  policy_figures
else
# The layer figures are their own run (BENCH_ONLY=layers): kept.
grep '"scenario": *"\(layers_\|machine_layers\)' benches/last-results.jsonl > "$RESULTS" 2>/dev/null || true
echo "== reads" >&2
machine_line main >> "$RESULTS"
PIN=$PIN_DAEMON
D=$W/reads; start_reads "$D"
OWNER_BYTES=$(curl -s -H "Authorization: Bearer $TOK" "$ADDR/v1/accounts/$ACC/owner" | wc -c)
MEMBERS_BYTES=$(curl -s -H "Authorization: Bearer $TOK" "$ADDR/v1/accounts/$ACC/members" | wc -c)
wrk_json owner "$ADDR/v1/accounts/$ACC/owner" "$TOK"
wrk_json members_20 "$ADDR/v1/accounts/$ACC/members" "$TOK"
wrk_json console_members_20 "$ADDR/a/$ACC/members" "$TOK" cookie
# The console's first load (page and assets), gzip'd as a browser asks.
page_weight
$PIN_DAEMON $BIN/examples/bare_server 127.0.0.1:0 "$OWNER_BYTES" > "$W/bare1" & until grep -q listening "$W/bare1" 2>/dev/null; do sleep 0.01; done
wrk_json bare_owner_size "$(sed -n 's/bare listening on //p' "$W/bare1")/"
$PIN_DAEMON $BIN/examples/bare_server 127.0.0.1:0 "$MEMBERS_BYTES" > "$W/bare2" & until grep -q listening "$W/bare2" 2>/dev/null; do sleep 0.01; done
wrk_json bare_members_size "$(sed -n 's/bare listening on //p' "$W/bare2")/"

echo "== reload under read load" >&2
$BIN/examples/bench reload --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --scripts-dir "$D/scripts" --saves 100 >> "$RESULTS"
kill "$PID"; wait "$PID" 2>/dev/null || true
PIN=

echo "== durable transfers" >&2
for c in 1 16 64; do
  D=$W/transfers$c; start_admind "$D"
  $BIN/examples/bench transfers --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --clients $c --seconds "$S" >> "$RESULTS"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  $BIN/examples/bench store --clients $c $( [ $c -gt 1 ] && echo --batched ) --seconds "$S" >> "$RESULTS"
done
$BIN/examples/bench store --clients 1 --seconds "$S" >> "$RESULTS"

# BENCH_SLOW=0 skips the slow-policy figure.
[ "${BENCH_SLOW:-1}" = 0 ] || slow_policy_figures

policy_figures
[ "${BENCH_POSTGRES:-1}" = 0 ] || postgres_figures

echo "== webhooks" >&2
D=$W/webhooks; start_admind "$D"
$BIN/examples/bench webhooks --base "$ADDR" --secret "$SECRET" --clients 64 --seconds "$S" >> "$RESULTS"
kill "$PID"; wait "$PID" 2>/dev/null || true
$BIN/examples/bench hmac --secret "$SECRET" --seconds "$S" >> "$RESULTS"

echo "== hook dispatch" >&2
cargo bench --bench hook_dispatch -- --warm-up-time 1 --measurement-time "$S" 2>/dev/null | python3 -c '
import json, re, sys
text = sys.stdin.read()
for name in ("no_handler", "compiled_plugin", "rhai_script"):
    m = re.search(r"before_owner_change/" + name + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text)
    value, unit = float(m.group(1)), m.group(2)
    us = value * {"ns": 0.001, "µs": 1, "us": 1, "ms": 1000}[unit]
    print(json.dumps({"scenario": "hook_" + name, "median_us": us}))
' >> "$RESULTS"

echo "== scale: $SCALE_ACCOUNTS accounts x $SCALE_MEMBERS members + one of $SCALE_BIG" >&2
D=$W/scale; mkdir -p "$D"
$BIN/examples/bench seed --data-dir "$D/data" --accounts "$SCALE_ACCOUNTS" --members "$SCALE_MEMBERS" --big "$SCALE_BIG" > "$D/seed.json"
cat "$D/seed.json" >> "$RESULTS"
SMALL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["small"])' "$D/seed.json")
BIG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["big"])' "$D/seed.json")
start_admind "$D"
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "{\"scenario\": \"startup\", \"startup_ms\": $STARTUP_MS, \"rss_kib\": $RSS_KB}" >> "$RESULTS"
signin() { curl -s "$ADDR/v1/accounts/$1/sessions" -H 'content-type: application/json' -d "{\"email\":\"$2\",\"password\":\"benchmark password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
TS=$(signin "$SMALL" owner-small@seed.test)
TB=$(signin "$BIG" owner-big@seed.test)
MID=$(curl -s -H "Authorization: Bearer $TB" "$ADDR/v1/accounts/$BIG/members?limit=200" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][-1]["id"])')
wrk_json page_small "$ADDR/v1/accounts/$SMALL/members?limit=20" "$TS"
wrk_json page_big_first "$ADDR/v1/accounts/$BIG/members?limit=20" "$TB"
wrk_json page_big_later "$ADDR/v1/accounts/$BIG/members?limit=20&after=$MID" "$TB"
# The Team members page (first page, 50 members) beside the API's first
# page of 50 of the same account.
wrk_json api_big_first_50 "$ADDR/v1/accounts/$BIG/members?limit=50" "$TB"
wrk_json console_big_first "$ADDR/a/$BIG/members" "$TB" cookie
RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "{\"scenario\": \"rss_after_load\", \"rss_kib\": $RSS_AFTER}" >> "$RESULTS"
kill "$PID"; wait "$PID" 2>/dev/null || true

fi  # BENCH_ONLY

echo "== hostile load" >&2
# idle_figures NAME: read calls and CPU ticks of $PID over 5 quiet seconds.
idle_figures() {
  local r0 r1 c0 c1
  r0=$(awk '/^syscr/ {print $2}' /proc/$PID/io); c0=$(awk '{print $14+$15}' /proc/$PID/stat)
  sleep 5
  r1=$(awk '/^syscr/ {print $2}' /proc/$PID/io); c1=$(awk '{print $14+$15}' /proc/$PID/stat)
  echo "{\"scenario\": \"$1\", \"read_calls_5s\": $((r1 - r0)), \"cpu_ticks_5s\": $((c1 - c0)), \"ticks_per_s\": $(getconf CLK_TCK)}" >> "$RESULTS"
}

case "${BENCH_ONLY:-}" in postgres|policy|slow|layers|console|transfers) python3 benches/report.py "$RESULTS" "$S" benches/last-results.jsonl > BENCHMARKS.md; cp "$RESULTS" benches/last-results.jsonl; echo "wrote BENCHMARKS.md" >&2; exit 0;; esac

# hostile BIN PREFIX EXTRA_CONFIG: the three hostile figures against one binary.
hostile() {
  local bin=$1 prefix=$2 extra=$3 saved=$BIN
  BIN=$bin
  D=$W/hostile$prefix; start_admind "$D" "$extra"
  ACC=$(curl -s "$ADDR/v1/accounts" -H "authorization: Bearer $OPERATOR" -H 'content-type: application/json' \
    -d '{"name":"Hostile","owner":{"name":"O","email":"owner@hostile.test"},"support_seats":2}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  $saved/examples/bench hostile-signins --base "$ADDR" --account "$ACC" --pid "$PID" --clients 0 | sed "s/\"scenario\": *\"/\"scenario\": \"$prefix/" >> "$RESULTS"
  $saved/examples/bench hostile-signins --base "$ADDR" --account "$ACC" --pid "$PID" --clients 150 --rounds 3 | sed "s/\"scenario\": *\"/\"scenario\": \"$prefix/" >> "$RESULTS"
  $saved/examples/bench made-up-methods --base "$ADDR" --count 20000 | sed "s/\"scenario\": *\"/\"scenario\": \"$prefix/" >> "$RESULTS"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  # 200 scripts of 250 KB, one change, then 5 s of quiet: read calls and CPU.
  D=$W/scripts$prefix; mkdir -p "$D/scripts"
  for n in $(seq -w 1 200); do
    { printf '// hooks: after_owner_change\n// calls: none\nfn after_owner_change(event) { log_info("%s"); }\n' "$n"; head -c 250000 /dev/zero | tr '\0' '/' | fold -w 100 | sed 's|^|//|'; } > "$D/scripts/p$n.rhai"
  done
  start_admind "$D" "$extra"
  sleep 2
  touch "$D/scripts/p001.rhai"; echo '// changed' >> "$D/scripts/p001.rhai"
  sleep 1
  idle_figures "${prefix}idle_after_change"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  # The baseline: an idle daemon with an empty scripts folder.
  D=$W/noscripts$prefix; start_admind "$D" "$extra"
  sleep 2
  idle_figures "${prefix}idle_no_scripts"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  BIN=$saved
}
# The per-IP limit is off so that the hashing bound alone is measured (one
# client address sends everything).
hostile "$BIN" "" ""
# BEFORE_BIN=<dir holding an older admind> measures the same on that build.
if [ -n "${BEFORE_BIN:-}" ]; then
  BASE_LIMITS="" hostile "$BEFORE_BIN" "before_" ""
fi

python3 benches/report.py "$RESULTS" "$S" benches/last-results.jsonl > BENCHMARKS.md
# The ratios beside their goals, on the terminal too.
sed -n '/^| figure/,/^$/p' BENCHMARKS.md >&2
cp "$RESULTS" benches/last-results.jsonl
echo "wrote BENCHMARKS.md" >&2
