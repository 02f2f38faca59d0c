#!/usr/bin/env bash
# Contract check: schemathesis (from PyPI) against /openapi.json of a running
# daemon with a seeded account, as the owner and as the operator. Checks: no
# 5xx, responses that match the schema, documented statuses and content types.
# Bounded (10 examples per operation, fixed seed) so CI stays deterministic.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The daemon and the seeding tool (incremental after the test build).
cargo build -q --bin admind --example bench
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
BIN=target/debug
D=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$D"' EXIT
mkdir -p "$D/scripts"
printf 'public_url = "http://contract"\n[auth]\nattempts_per_minute = 100000\nargon2_memory_kib = 1024\nargon2_iterations = 1\n' > "$D/admind.toml"
ADMIND_LOG=error $BIN/admind serve --config "$D/admind.toml" --listen 127.0.0.1:0 --data-dir "$D/data" \
  --mail-dir "$D/mail" --scripts-dir "$D/scripts" > "$D/out" 2> "$D/err" &
PID=$!
until grep -q "listening on" "$D/out" 2>/dev/null; do sleep 0.05; done
ADDR=$(sed -n 's/admind listening on //p' "$D/out")
OPERATOR=$(cat "$D/data/operator.token")
OWNER=$($BIN/examples/bench setup-reads --base "$ADDR" --mail-dir "$D/mail" --operator="$OPERATOR" --members 3 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for who in owner operator; do
  token=$OWNER; [ "$who" = operator ] && token=$OPERATOR
  echo "schemathesis as $who:"
  schemathesis run "$ADDR/openapi.json" -H "Authorization: Bearer $token" -n 10 --seed 1 \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases coverage,fuzzing --no-color 2>&1 | tail -25
  test "${PIPESTATUS[0]}" -eq 0
done
