#!/usr/bin/env bash
# The whole test suite (as root: the privileged tests build throwaway namespaces).
# Prints one summary line per suite; exits non-zero if any suite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo test (unit + privileged integration tests)"
cargo test --workspace --all-targets 2>&1 | tee /tmp/podnet-cargo-test.log | grep -E "^(test result|running|error|failures:)|FAILED|panicked" || true
if grep -qE "^test result: FAILED|^error" /tmp/podnet-cargo-test.log; then
  echo "cargo test failed"; exit 1
fi
awk '/^test result:/ {for (i=1;i<=NF;i++) {if ($(i+1) ~ /^passed/) p+=$i; if ($(i+1) ~ /^failed/) f+=$i}} END {printf "rust: %d passed, %d failed\n", p, f}' /tmp/podnet-cargo-test.log
