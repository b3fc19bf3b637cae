#!/usr/bin/env bash
# Runs the official-driver suites (PyMongo, Node) against an already built mongosync-testkit.
#
#   cargo build -p mongosync-testkit --bin mongosync-testkit   # first
#   scripts/client-tests.sh
#
# The binary is $MONGOSYNC_TESTKIT_BIN, else <repo>/target/debug/mongosync-testkit (honouring
# $CARGO_TARGET_DIR). Exits non-zero if either suite fails; both suites always run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -z "${MONGOSYNC_TESTKIT_BIN:-}" ]]; then
  target="${CARGO_TARGET_DIR:-$repo/target}"
  MONGOSYNC_TESTKIT_BIN="$target/debug/mongosync-testkit"
fi
MONGOSYNC_TESTKIT_BIN="$(realpath -m "$MONGOSYNC_TESTKIT_BIN")"
export MONGOSYNC_TESTKIT_BIN
if [[ ! -x "$MONGOSYNC_TESTKIT_BIN" ]]; then
  echo "client-tests: no executable at $MONGOSYNC_TESTKIT_BIN (build it first)" >&2
  exit 2
fi

status=0

# --- PyMongo ---
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
req=clients/python/requirements.txt
stamp=.venv/.client-tests-requirements
# Reinstall only when requirements.txt changed since the last successful install.
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
echo "== PyMongo suite =="
(cd clients/python && ../../.venv/bin/python -m pytest -q -p no:cacheprovider) || status=1

# --- Node ---
echo "== Node driver suite =="
(
  cd clients/node
  if [[ -f package-lock.json ]]; then
    # npm ci wipes node_modules: only run it when the lock changed since the last install.
    if ! cmp -s package-lock.json node_modules/.client-tests-lock 2>/dev/null; then
      npm ci --no-audit --no-fund --loglevel=error
      cp package-lock.json node_modules/.client-tests-lock
    fi
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
  node --test --test-concurrency=1 test/
) || status=1

exit "$status"
