#!/usr/bin/env bash
# User-space instructions per request of the three read figures (GET owner,
# GET members of 20, the console's Team members page), counted by valgrind's
# callgrind: the same count whatever else the machine is doing, where a
# req/s figure on a shared machine moves by ±15 %. It leaves out the
# kernel's share (the socket work), which the wrk figures include.
#
#   benches/instructions.sh [BIN...]   (default: target/release/admind)
#
# REQUESTS (default 1000) requests per figure, on one keep-alive connection,
# after 50 unmeasured ones. Needs valgrind and a release build of the
# `bench` example (cargo build --release --bin admind --examples).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
N=${REQUESTS:-1000}
[ $# -gt 0 ] || set -- target/release/admind
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT

# requests ADDR PATH HEADER COUNT: COUNT GETs on one connection, each 200.
requests() {
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port)
name, value = sys.argv[3].split(": ", 1)
for _ in range(int(sys.argv[4])):
    conn.request("GET", sys.argv[2], headers={name: value})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
PY
}

for bin in "$@"; do
  D=$W/$(basename "$bin")-$RANDOM; mkdir -p "$D/scripts"
  printf 'public_url = "http://bench"\n[auth]\nattempts_per_minute_per_ip = 0\n' > "$D/admind.toml"
  ADMIND_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/cg.%p" "$bin" serve --config "$D/admind.toml" \
    --listen 127.0.0.1:0 --data-dir "$D/data" --mail-dir "$D/mail" --scripts-dir "$D/scripts" > "$D/out" 2> "$D/err" &
  PID=$!
  until grep -q "listening on" "$D/out" 2>/dev/null; do
    kill -0 $PID 2>/dev/null || { echo "admind did not start:" >&2; tail -5 "$D/err" >&2; exit 1; }
    sleep 0.2
  done
  ADDR=$(sed -n 's/admind listening on //p' "$D/out")
  until curl -sf "$ADDR/healthz" >/dev/null; do sleep 0.2; done
  SETUP=$(target/release/examples/bench setup-reads --base "$ADDR" --mail-dir "$D/mail" --operator="$(cat "$D/data/operator.token")" --members 19)
  ACC=$(echo "$SETUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account"])')
  TOK=$(echo "$SETUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  for figure in owner members page; do
    if [ $figure = page ]; then
      path=/a/$ACC/members; header="Cookie: admind_session=$TOK; admind_csrf=benchmarkbenchmarkbenchmarkbenchmark"
    else
      path=/v1/accounts/$ACC/$figure; header="Authorization: Bearer $TOK"
    fi
    requests "$ADDR" "$path" "$header" 50
    callgrind_control -z $PID >/dev/null 2>&1
    requests "$ADDR" "$path" "$header" "$N"
    callgrind_control -d "$figure" $PID >/dev/null 2>&1
    total=$(grep -h "^summary:\|^totals:" $(ls -t "$D"/cg.$PID* | head -1) | head -1 | awk '{print $2}')
    echo "{\"scenario\": \"instructions_$figure\", \"binary\": \"$bin\", \"requests\": $N, \"instructions_per_request\": $((total / N))}"
  done
  kill $PID; wait $PID 2>/dev/null || true
done
