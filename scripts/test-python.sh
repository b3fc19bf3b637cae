#!/usr/bin/env bash
# Tests of the Python package (mongosync-py/): pytest, mypy --strict, pyright, stubtest.
#
# Runs after the workspace build (`cargo build --workspace --all-targets`, debug): the
# extension is built once with `maturin develop` in the debug profile for the host, so it
# reuses that build's compiled driver (only pyo3 and the binding crate compile). Creates or
# reuses the virtualenv <repo>/.venv (shared with scripts/client-tests.sh) and installs the
# pinned tools of mongosync-py/requirements-dev.txt when they changed. Honours
# $CARGO_TARGET_DIR (default <repo>/target). Exits non-zero if any part fails; every part runs.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export PYRIGHT_PYTHON_IGNORE_WARNINGS=1

status=0
timings=()
part() { # part NAME COMMAND...: runs it, records its time and failure
  local name="$1" start end
  shift
  echo "== $name =="
  start=$(date +%s%N)
  if ! "$@"; then
    status=1
    name="$name (FAILED)"
  fi
  end=$(date +%s%N)
  local ms=$(((end - start) / 1000000))
  timings+=("$(printf '%-26s %4d.%01d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))")
}

setup() {
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv || return 1
  fi
  local req=mongosync-py/requirements-dev.txt stamp=.venv/.test-python-requirements
  if ! cmp -s "$req" "$stamp" 2>/dev/null; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req" || return 1
    cp "$req" "$stamp"
  fi
}

build() {
  # maturin develop needs an active virtualenv (TOOLCHAIN pitfall 9); no --release, no
  # --target: the workspace's debug build is reused.
  local log="$CARGO_TARGET_DIR/maturin-develop.log"
  mkdir -p "$CARGO_TARGET_DIR"
  (cd mongosync-py && VIRTUAL_ENV="$repo/.venv" PATH="$repo/.venv/bin:$PATH" \
    maturin develop -v) >"$log" 2>&1 || { tail -n 40 "$log"; return 1; }
  grep -E "Installed|Compiling (mongodb|pyo3|mongosync-py) " "$log"
  if grep -q "Compiling mongodb " "$log"; then
    echo "test-python: warning: maturin compiled the driver again; run it after" \
      "\`cargo build --workspace --all-targets\` (same profile, same features)" >&2
  fi
}

part "virtualenv + tools" setup || true
if [[ $status -ne 0 ]]; then
  echo "test-python: could not set up .venv" >&2
  exit 1
fi
part "build extension" build
if [[ $status -eq 0 ]]; then
  py="$repo/.venv/bin/python"
  part "pytest" bash -c "cd mongosync-py && '$py' -m pytest -q"
  part "mypy --strict" bash -c "cd mongosync-py && '$py' -m mypy"
  part "pyright" bash -c "cd mongosync-py && '$repo/.venv/bin/pyright'"
  part "stubtest" bash -c "cd mongosync-py && '$py' -m mypy.stubtest mongosync._mongosync"
fi

echo "== timings =="
printf '%s\n' "${timings[@]}"
exit "$status"
