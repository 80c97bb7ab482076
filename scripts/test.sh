#!/usr/bin/env bash
# Runs every test of the project and ends with one line "tests: N passed, M failed".
# Installs what it needs first (scripts/setup.sh), then builds and runs the Swift suite
# (parity with transformers, loaders, tokenizer, sampling, decoder properties).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
swift build --build-tests
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log" || status=$?
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
passed=0; failed=0
if [[ "$summary" =~ Executed\ ([0-9]+)\ tests?,\ with\ ([0-9]+)\ failure ]]; then
  failed=${BASH_REMATCH[2]}; passed=$(( BASH_REMATCH[1] - failed ))
else
  failed=1
fi
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
