#!/usr/bin/env bash
# Runs every test of the npm package `mongosync-node/` after the workspace build of
# scripts/test.sh: installs the npm packages (npm ci, from package-lock.json) when missing,
# builds the native module once in the same debug profile, host target and target directory
# (no second compile of the driver: TOOLCHAIN.md pitfall 6), places it and refreshes the
# generated `native.d.ts` as `napi build` does, compiles the TypeScript, checks the type tests
# (test-d/, tsc --noEmit), then runs the node:test suite and the example. Prints each part's
# time; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PKG="$ROOT/mongosync-node"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

part() {
  local name="$1"
  shift
  local start=$SECONDS
  echo "==> node: $name"
  "$@"
  echo "    ($name: $((SECONDS - start)) s)"
}

npm_packages() {
  cd "$PKG"
  if [ ! -d node_modules/typescript ] || [ ! -d node_modules/@napi-rs/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --ignore-scripts --no-audit --no-fund
  else
    echo "    node_modules up to date"
  fi
}

native_module() {
  cd "$ROOT"
  local defs
  defs="$(mktemp -d)"
  # napi-derive writes the type definitions while the crate compiles with this set; only
  # the binding crate itself is rebuilt for it. The same package selection as test.sh's
  # workspace build, so that features unify alike and the driver stays Fresh (`-p
  # mongosync-node` alone resolves other features and compiles the driver again).
  NAPI_TYPE_DEF_TMP_FOLDER="$defs" cargo build --workspace --all-targets --locked -v 2>&1 \
    | tee "$defs.log" | grep -E '^\s+(Compiling|Finished)|^(error|warning)' || true
  if ! grep -q 'Finished' "$defs.log"; then
    cat "$defs.log"
    return 1
  fi
  if grep -qE '^\s+Compiling mongodb ' "$defs.log"; then
    echo "error: the driver was compiled again: the native module must reuse the workspace build" >&2
    return 1
  fi
  grep -E '^\s+Fresh mongodb ' "$defs.log" || true
  ln -f "$TARGET_DIR/debug/libmongosync_node.so" "$PKG/mongosync.linux-x64-gnu.node" 2>/dev/null \
    || cp "$TARGET_DIR/debug/libmongosync_node.so" "$PKG/mongosync.linux-x64-gnu.node"
  cd "$PKG"
  node scripts/gen-dts.mjs "$defs" native.d.ts
  rm -rf "$defs" "$defs.log"
  if ! git -C "$ROOT" diff --quiet -- mongosync-node/native.d.ts; then
    echo "    note: native.d.ts changed (commit the refreshed file)"
  fi
}

tsc_build() { cd "$PKG" && node node_modules/typescript/bin/tsc -p tsconfig.json; }
type_tests() { cd "$PKG" && node node_modules/typescript/bin/tsc -p test-d/tsconfig.json; }
node_tests() {
  cd "$PKG"
  rm -rf build
  node node_modules/typescript/bin/tsc -p tests/tsconfig.json
  node --test --test-concurrency=1 --test-reporter=spec build/tests/
}

total=$SECONDS
part "npm ci" npm_packages
part "native module (cargo build with NAPI_TYPE_DEF_TMP_FOLDER, debug)" native_module
part "tsc (src -> dist)" tsc_build
part "type tests (tsc --noEmit test-d)" type_tests
part "node --test (tests/, the example)" node_tests
echo "==> node: all passed ($((SECONDS - total)) s)"
