#!/usr/bin/env bash
# Every test: the Rust suite (unit, integration, crash campaign, README
# examples), the browser tests (Playwright for Python driving Debian's
# Chromium, axe-core from npm), the API contract check (schemathesis) and
# the SCIM compliance check (scim2-tester).
# Installs what is missing first (apt needs root, as on CI machines).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- the Rust toolchain: rustup's, installed when missing (a fresh machine)
if ! command -v cargo >/dev/null 2>&1; then
  if [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    echo "installing the Rust toolchain (rustup)" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo --version

# --- formatting and lints, the workspace's own among them (no unwrap,
# expect or panic! outside tests): cheap, and they keep reviews about
# substance
if rustup component list --installed 2>/dev/null | grep -q rustfmt; then
  cargo fmt --all -- --check
fi
if rustup component list --installed 2>/dev/null | grep -q clippy; then
  cargo clippy --workspace --all-targets -- -D warnings
fi
# The code's documentation: every link resolves (ARCHITECTURE.md's names
# are checked by the architecture tests, the doc comments here).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet

# --- what the browser tests need
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium" >&2
  (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; })
fi
if ! python3 -c 'import playwright, pytest' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check 'playwright>=1.40,<2' 'pytest>=7,<9'
fi
AXE_DIR=target/axe-core
if [ ! -f "$AXE_DIR/package/axe.min.js" ]; then
  mkdir -p "$AXE_DIR"
  (cd "$AXE_DIR" && npm pack --silent axe-core@4 >/dev/null && tar xzf axe-core-*.tgz)
fi

# --- the Rust suite (README's quick command)
cargo test --workspace --all-targets

# --- PostgreSQL: a throwaway cluster (installed when missing); the store's
# tests on it, then the whole integration suite again with every daemon on
# a database of its own (TEST_STORE=postgres); removed afterwards.
PG_DIR=$(mktemp -d)
chmod 755 "$PG_DIR"
trap 'tests/postgres/cluster.sh stop "$PG_DIR"; rm -rf "$PG_DIR"' EXIT
TEST_POSTGRES_URL=$(tests/postgres/cluster.sh start "$PG_DIR")
export TEST_POSTGRES_URL
cargo test --lib store::
TEST_STORE=postgres cargo test --workspace --tests
cargo test --test postgres -- --ignored
# Two replicas on one database; the crash campaign with a replica SIGKILLed
# each round, then PostgreSQL itself stopped and started under them.
TEST_STORE=postgres cargo test --test replicas -- --ignored
TEST_STORE=postgres CRASH_CAMPAIGN_REPLICAS=2 TEST_POSTGRES_DIR="$PG_DIR" \
  cargo test --test crash_campaign

# --- the console in a real browser
cargo build -q --bin admind
AXE_JS="$PWD/$AXE_DIR/package/axe.min.js" DAEMON_BIN="$PWD/target/debug/admind" \
  SCREENSHOT_DIR="${SCREENSHOT_DIR:-$PWD/target/console-screenshots}" \
  python3 -m pytest -q tests/browser

# --- the API contract, and SCIM compliance (scim2-tester)
bash tests/contract/schemathesis.sh
bash tests/contract/scim.sh
