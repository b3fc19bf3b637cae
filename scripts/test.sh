#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit tests, driver tests, the
# unified-format spec runner over ../shared/spec-tests), then PyMongo and Node.js driver
# suites against the `mongosync-testkit` command. Installs what it needs (a Python
# virtualenv, npm packages) on first use. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# One profile and one target directory for everything (TOOLCHAIN.md, pitfall 6).
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "==> cargo build (all targets)"
cargo build --workspace --all-targets --locked

echo "==> cargo test"
cargo test --workspace --locked --no-fail-fast

echo "==> driver suites (PyMongo, Node.js) against the mongosync-testkit command"
MONGOSYNC_TESTKIT_BIN="$PWD/target/debug/mongosync-testkit" bash scripts/client-tests.sh

echo "==> all tests passed"
