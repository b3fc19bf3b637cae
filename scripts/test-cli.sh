#!/usr/bin/env bash
# The `mongosync` command's face, after the workspace build (`cargo build --workspace
# --all-targets`) and before `cargo test --workspace`, which runs the command's Rust tests
# (mongosync-cli/tests/*.rs, including the dashboard in headless Chromium):
#   1. installs Debian's Chromium when missing (the dashboard test needs it; with CI=true a
#      missing browser fails that test instead of skipping it);
#   2. runs the README's "Use it like mongosync" runbook with curl against the built binaries:
#      two `mongosync-testkit` clusters with authentication, `mongosync`, start, progress,
#      commit, COMMITTED.
# Binaries come from $CARGO_TARGET_DIR/debug (default <repo>/target/debug). Exits non-zero on
# any failure and prints how long each part took.
set -euo pipefail
TEST_PW="test-cli-$RANDOM-pw"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$(realpath -m "$target/debug")"

part() { echo "==> test-cli: $1"; part_start=$SECONDS; }
done_part() { echo "    ($1 took $((SECONDS - part_start)) s)"; }

# --- 1. Chromium ---
part "Chromium for the dashboard test"
if [[ -x /usr/bin/chromium ]]; then
  echo "    present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  /usr/bin/chromium --version 2>/dev/null | head -1
fi
done_part "Chromium"

# --- 2. The README's runbook, with curl ---
part "README runbook with curl"
for b in mongosync mongosync-testkit; do
  if [[ ! -x "$bin/$b" ]]; then
    echo "test-cli: no executable at $bin/$b (run cargo build --workspace first)" >&2
    exit 2
  fi
done
command -v curl >/dev/null || { echo "test-cli: curl is needed" >&2; exit 2; }
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits (up to 60 s) until the first line of file $1 exists; prints it.
first_line() {
  for _ in $(seq 600); do
    if [[ -s "$1" ]]; then head -1 "$1"; return 0; fi
    sleep 0.1
  done
  echo "test-cli: nothing in $1" >&2; return 1
}

"$bin/mongosync-testkit" --port 0 --auth-user admin --auth-password "$TEST_PW" >"$work/c0" 2>&1 &
pids+=($!)
"$bin/mongosync-testkit" --port 0 --auth-user admin --auth-password "$TEST_PW" >"$work/c1" 2>&1 &
pids+=($!)
uri0="$(first_line "$work/c0")"; uri1="$(first_line "$work/c1")"
# The printed URIs carry no credentials: add them (mongodb://HOST:PORT/?replicaSet=rs0).
cred() { echo "$1" | sed "s#mongodb://#mongodb://admin:$TEST_PW@#; s#/?#/?authSource=admin\&#"; }
port=$(( 27200 + RANDOM % 600 ))
"$bin/mongosync" --cluster0 "$(cred "$uri0")" --cluster1 "$(cred "$uri1")" --port "$port" \
  --verbosity INFO >"$work/mongosync.log" 2>&1 &
pids+=($!)
api="http://localhost:$port/api/v1"

# Polls /progress until the jq-free grep pattern $1 matches (up to 120 s).
until_progress() {
  for _ in $(seq 1200); do
    if curl -s "$api/progress" | grep -q "$1"; then return 0; fi
    sleep 0.1
  done
  echo "test-cli: /progress never matched $1; last: $(curl -s "$api/progress")" >&2
  tail -20 "$work/mongosync.log" >&2
  return 1
}
until_progress '"state":"IDLE"'
curl -sf -X POST "$api/start" --data '{"source": "cluster0", "destination": "cluster1"}' \
  | grep -qx '{"success":true}'
until_progress '"canCommit":true'
curl -sf -X POST "$api/commit" --data '{ }' | grep -qx '{"success":true}'
until_progress '"state":"COMMITTED"'
curl -sf "http://localhost:$port/metrics" | grep -q '^mongosync_state{state="COMMITTED"} 1'
if grep -q "$TEST_PW" "$work/mongosync.log"; then
  echo "test-cli: the password appears in mongosync's output" >&2; exit 1
fi
echo "    start → canCommit → commit → COMMITTED over curl: ok"
done_part "README runbook"
echo "==> test-cli: all passed"
