#!/usr/bin/env bash
# SCIM compliance: the community's checker, scim2-tester (its CLI is
# `scim2 ... test`, PyPI scim2-cli), against a real daemon with an account
# and a directory token of its owner. Every check must pass but the two
# that ask what the account's rules refuse, each named below with its
# reason (README, "Provisioning from Okta or Entra ID"):
#  - creating, renaming and deleting groups: the groups are the account's
#    roles (the checker's Group create/query/replace/delete/patch checks all
#    start by creating one);
#  - replacing `emails` with a new primary address in one PATCH: only a
#    verified address becomes primary (R14) and the primary address stays
#    until another is (R15); the new address is added and mailed its link,
#    and becomes primary when the link is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --bin admind
if ! command -v scim2 >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check 'scim2-cli>=0.6,<0.7'
fi
BIN=target/debug
D=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$D"' EXIT
printf '[auth]\nattempts_per_minute = 100000\nargon2_memory_kib = 1024\nargon2_iterations = 1\n' > "$D/admind.toml"
ADMIND_LOG=error $BIN/admind serve --config "$D/admind.toml" --listen 127.0.0.1:0 --data-dir "$D/data" \
  --mail-dir "$D/mail" > "$D/out" 2> "$D/err" &
PID=$!
until grep -q "listening on" "$D/out" 2>/dev/null; do sleep 0.05; done
A=$(sed -n 's/admind listening on //p' "$D/out")
OP=$(cat "$D/data/operator.token")
J='content-type: application/json'
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
ACC=$(curl -sf "$A/v1/accounts" -H "authorization: Bearer $OP" -H "$J" \
  -d '{"name":"Acme","owner":{"name":"Ana","email":"ana@acme.test"},"support_seats":1000}' | field id)
for _ in $(seq 100); do MAIL=$(ls "$D"/mail/*.eml 2>/dev/null | head -1); [ -n "$MAIL" ] && break; sleep 0.1; done
TOKEN=$(sed -e ':a' -e '/=\r\?$/{N;s/=\r\?\n//;ba}' "$MAIL" | sed 's/=3D/=/g' | grep -o 'token=[A-Za-z0-9_-]*' | head -1 | cut -d= -f2)
curl -sf "$A/v1/password-resets/confirm" -H "$J" -d "{\"token\":\"$TOKEN\",\"password\":\"a long secret\"}"
ANA=$(curl -sf "$A/v1/accounts/$ACC/sessions" -H "$J" -d '{"email":"ana@acme.test","password":"a long secret"}' | field token)
SCIM_TOKEN=$(curl -sf "$A/v1/accounts/$ACC/scim/tokens" -H "authorization: Bearer $ANA" -H "$J" \
  -d '{"name":"scim2-tester"}' | field token)
SCIM_CLI_HEADERS="Authorization: Bearer $SCIM_TOKEN" scim2 --url "$A/scim/v2" test > "$D/report" 2>&1 || true
python3 - "$D/report" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
results = []  # (status, check, reason)
for i, line in enumerate(lines):
    m = re.match(r"^(SUCCESS|ERROR|CRITICAL|SKIPPED|WARNING) (\S+)", line)
    if m:
        reason = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("  ") else ""
        results.append((m.group(1), m.group(2), reason))
def expected(check, reason):
    if reason.startswith("groups_are_roles:"):
        return "groups are the account's roles"
    if check == "check_replace_attribute" and "for 'emails'" in reason:
        return "R14/R15: a new address becomes primary once verified"
    return None
passed = [r for r in results if r[0] == "SUCCESS"]
unexpected = [r for r in results if r[0] != "SUCCESS" and not expected(r[1], r[2])]
known = [r for r in results if r[0] != "SUCCESS" and expected(r[1], r[2])]
print(f"scim2-tester: {len(passed)} checks passed, {len(known)} refused by the account's rules:")
for status, check, reason in known:
    print(f"  {status} {check}: {expected(check, reason)}")
for status, check, reason in unexpected:
    print(f"FAILED {status} {check}: {reason}")
if not results:
    print("\n".join(lines[-20:]))
sys.exit(1 if unexpected or len(passed) < 35 else 0)
EOF
