#!/usr/bin/env bash
# The C binding tests: builds and runs them against the libmoragent.so in LIB_DIR and ends with
# one line "c: N passed, M failed".
#   1-2. header_test.c compiled as C99 and as C++17 with -Wall -Wextra -Werror -pedantic, then run
#   3.   api_test.c: every function, good and bad calls (its own count is added in)
#   4-5. every moragent_ function the header declares is exported, and nothing else moragent_ is
#   6.   the library needs no Swift runtime library at run time
# Usage: Tests/bindings/c/run.sh LIB_DIR
set -uo pipefail
if [ $# -ne 1 ] || [ ! -f "$1/libmoragent.so" ]; then
  echo "usage: $0 LIB_DIR (a folder holding libmoragent.so)" >&2
  exit 2
fi
lib_dir="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="$here/build"
mkdir -p "$build"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
model="$root/Tests/MoRAgentTests/Fixtures/models/qwen2-tiny"
strict=(-Wall -Wextra -Werror -pedantic -I"$root/include")
link=(-L"$lib_dir" -lmoragent -Wl,-rpath,"$lib_dir")

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

if gcc -std=c99 "${strict[@]}" "$here/header_test.c" "${link[@]}" -o "$build/header_test_c" && "$build/header_test_c"; then
  pass "header as C99"
else
  fail "header as C99"
fi
if g++ -std=c++17 -x c++ "${strict[@]}" "$here/header_test.c" "${link[@]}" -o "$build/header_test_cpp" && "$build/header_test_cpp"; then
  pass "header as C++17"
else
  fail "header as C++17"
fi

if gcc -std=c99 "${strict[@]}" -pthread "$here/api_test.c" "${link[@]}" -lm -o "$build/api_test"; then
  out="$("$build/api_test" "$model" "$scratch")"; status=$?
  echo "$out"
  if [[ "$out" =~ api:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
    [ "$status" -eq 0 ] || [ "${BASH_REMATCH[2]}" -gt 0 ] || fail "api_test exit status $status"
  else
    fail "api_test did not finish (exit status $status)"
  fi
else
  fail "api_test build"
fi

declared="$(grep '^MORAGENT_API' "$root/include/moragent.h" | grep -o 'MORAGENT_API[^(]*(' | sed -E 's/.*[^a-z0-9_](moragent_[a-z0-9_]*)[(]$/\1/' | sort -u)"
exported="$(nm -D --defined-only "$lib_dir/libmoragent.so" | awk '$2 == "T" && $3 ~ /^moragent_/ { print $3 }' | sort -u)"
missing="$(comm -23 <(echo "$declared") <(echo "$exported"))"
extra="$(comm -13 <(echo "$declared") <(echo "$exported"))"
if [ -n "$declared" ] && [ -z "$missing" ]; then pass "all $(echo "$declared" | wc -l) declared functions exported"; else fail "declared but not exported: ${missing:-none found}"; fi
if [ -z "$extra" ]; then pass "no undeclared moragent_ exports"; else fail "exported but not declared: $extra"; fi

swift_libs="$(ldd "$lib_dir/libmoragent.so" | grep -Ei 'libswift|libFoundation|libdispatch|libBlocksRuntime' || true)"
if [ -z "$swift_libs" ]; then pass "no Swift runtime library needed (ldd)"; else fail "needs Swift runtime libraries: $swift_libs"; fi

echo "c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
