#!/usr/bin/env bash
# Runs every test of the project and ends with one line "tests: N passed, M failed".
# Installs what it needs first (scripts/setup.sh), then builds and runs the Swift suite
# (parity with transformers and PEFT, loaders, tokenizer, sampling, decoder, experts, routers,
# gradients, RL updates, bundles), the C ABI and binding tests (scripts/test-bindings.sh: C,
# Python, Lua, the household environment, examples), and the main job on its reduced budget
# (scripts/test-demo.sh: bin/demo with MORAGENT_DEMO_QUICK=1, its outputs and its result).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
passed=0; failed=0
if swift build --build-tests; then
  swift test --skip-build --disable-swift-testing 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  summary=$(grep -E "^\s*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
  if [[ "$summary" =~ Executed\ ([0-9]+)\ tests?,\ with\ ([0-9]+)\ failure ]]; then
    passed=$(( BASH_REMATCH[1] - BASH_REMATCH[2] )); failed=${BASH_REMATCH[2]}
  fi
  [ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))
  for suite in bindings demo; do
    bash "scripts/test-$suite.sh" 2>&1 | tee "$log"
    if [[ "$(tail -n 1 "$log")" =~ $suite:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
    else
      failed=$((failed + 1))
    fi
  done
else
  failed=1
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
