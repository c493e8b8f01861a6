#!/usr/bin/env bash
# The whole test suite, as root (the privileged tests build and remove their own namespaces):
# Rust unit + integration tests, the C ABI checks and tests (sanitizers, valgrind, C++), the Go
# bindings' tests, and the demo. Each suite's summary is printed; the last line totals them.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
failed_suites=()
passed=0
failed=0

count() { # sum "N passed" / "N failed" from a log's summary lines
  awk '/test result:|[0-9]+ passed, [0-9]+ failed/ {
         for (i=1;i<=NF;i++) { if ($(i+1) ~ /^passed/) p+=$i; if ($(i+1) ~ /^failed/) f+=$i } }
       /^(--- PASS|ok  )/ {gp++} /^(--- FAIL|FAIL)/ {gf++}
       END { printf "%d %d\n", p+gp, f+gf }' "$1"
}

suite() { # suite NAME COMMAND...
  local name=$1; shift
  local log=/tmp/podnet-test-$name.log
  echo "== $name: $*"
  if "$@" >"$log" 2>&1; then status=ok; else status=FAILED; failed_suites+=("$name"); fi
  read -r p f < <(count "$log")
  passed=$((passed + p)); failed=$((failed + f))
  grep -E "test result:|[0-9]+ passed, [0-9]+ failed|^(ok|FAIL|--- FAIL)|panicked|error(\[|:)" "$log" | tail -n 40
  echo "-- $name: $status ($p passed, $f failed)"
  [ "$status" = ok ] || tail -n 60 "$log"
}

suite rust cargo test --workspace --all-targets
suite c make header-check symbols-check cxx-check c-test c-example
if [ -f bindings-go/Makefile ]; then
  suite go make -C bindings-go ci
fi
suite demo cargo run -q --release -p podnet-cli -- demo

if ((${#failed_suites[@]})); then
  echo "failed suites: ${failed_suites[*]}"
  [ "$failed" -gt 0 ] || failed=${#failed_suites[@]}
fi
echo "$passed passed, $failed failed"
((${#failed_suites[@]} == 0))
