#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit tests, driver tests, the engine's
# end-to-end scenarios, the `mongosync` command's HTTP and browser tests, the unified-format
# spec runner over ../shared/spec-tests), the PyMongo and Node.js driver suites against the
# `mongosync-testkit` command, then the Python and Node packages. Installs what it needs
# (Chromium, a Python virtualenv, npm packages) when missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# One profile, one target triple and one target directory for everything, the bindings'
# native modules included (TOOLCHAIN.md, pitfall 6): the driver is compiled once per run.
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
target="${CARGO_TARGET_DIR:-$PWD/target}"

timings=()
part() { echo "==> $1"; part_name="$1"; part_start=$SECONDS; }
done_part() { timings+=("$(printf '%5d s  %s' $((SECONDS - part_start)) "$part_name")"); }

part "cargo build (all targets)"
cargo build --workspace --all-targets --locked
done_part

part "the mongosync command's setup (Chromium) and curl runbook"
bash scripts/test-cli.sh
done_part

part "cargo test"
cargo test --workspace --locked --no-fail-fast
done_part

part "driver suites (PyMongo, Node.js) against the mongosync-testkit command"
MONGOSYNC_TESTKIT_BIN="$target/debug/mongosync-testkit" bash scripts/client-tests.sh
done_part

part "the Python package (extension, pytest, mypy, pyright, stubtest)"
bash scripts/test-python.sh
done_part

part "the npm package (native module, TypeScript, type tests, node:test)"
bash scripts/test-node.sh
done_part

echo "==> time per part"
printf '%s\n' "${timings[@]}"
echo "==> all tests passed"
