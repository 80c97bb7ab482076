#!/usr/bin/env bash
# The C binding tests: builds and runs them against the libmoragent.so in LIB_DIR and ends with
# one line "c: N passed, M failed".
#   1-2. header_test.c compiled as C99 and as C++17 with -Wall -Wextra -Werror -pedantic, then run
#   3.   api_test.c: every 0.1 function, good and bad calls (its own count is added in)
#   4.   the router plugins: examples/c/plugins/round_robin.c and the variants of
#        plugins/test_plugin.c, built strict as C99 shared objects that do not link libmoragent
#   5.   routing_test.c: every 0.2 function (experts, routers, plugins, policies), good and bad
#        calls (its own count is added in)
#   5b.  token_roles_test.c: the 0.3 functions (token and Mixture-of-Roles routers in policies,
#        per-token roles and experts), good and bad calls (its own count is added in)
#   5c.  training_test.c: the 0.4 functions (episodes in groups, trainers, updates, statistics,
#        bundles), good and bad calls, save -> load -> a bit-identical next update (its own count
#        is added in)
#   6-7. every moragent_ function the header declares is exported, and nothing else moragent_ is
#   8.   the library needs no Swift runtime library at run time
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

# Builds one test binary and adds the "NAME: N passed, M failed" line it prints.
run_suite() {
  local name="$1" source="$2"; shift 2
  if gcc -std=c99 "${strict[@]}" -pthread "$here/$source" "${link[@]}" -ldl -lm -o "$build/${source%.c}"; then
    out="$("$build/${source%.c}" "$@")"; status=$?
    echo "$out"
    if [[ "$out" =~ $name:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
      [ "$status" -eq 0 ] || [ "${BASH_REMATCH[2]}" -gt 0 ] || fail "${source%.c} exit status $status"
    else
      fail "${source%.c} did not finish (exit status $status)"
    fi
  else
    fail "${source%.c} build"
  fi
}

run_suite api api_test.c "$model" "$scratch"

plugins="$build/plugins"
mkdir -p "$plugins"
plugin_flags=(-std=c99 "${strict[@]}" -shared -fPIC)
plugins_ok=1
gcc "${plugin_flags[@]}" "$root/examples/c/plugins/round_robin.c" -o "$plugins/round_robin.so" || plugins_ok=0
gcc "${plugin_flags[@]}" "$here/plugins/test_plugin.c" -o "$plugins/test_plugin.so" || plugins_ok=0
for variant in WRONG_VERSION NO_ENTRY FAILING_ENTRY DUPLICATE NULL_DECIDE BAD_NAME NO_KINDS; do
  gcc "${plugin_flags[@]}" -D"$variant" "$here/plugins/test_plugin.c" -o "$plugins/test_plugin_$variant.so" || plugins_ok=0
done
if [ "$plugins_ok" -eq 1 ] && ! nm -D --undefined-only "$plugins/round_robin.so" | grep -q ' moragent_'; then
  pass "plugins build as C99 shared objects that need nothing from libmoragent"
else
  fail "plugins build"
fi
run_suite routing routing_test.c "$root/Tests/MoRAgentTests/Fixtures/models" \
  "$root/Tests/MoRAgentTests/Fixtures/adapters/qwen2-tiny" "$plugins" "$scratch"
mkdir -p "$scratch/token_roles"
run_suite token_roles token_roles_test.c "$root/Tests/MoRAgentTests/Fixtures/models" \
  "$root/Tests/MoRAgentTests/Fixtures/adapters/qwen2-tiny" "$scratch/token_roles"
mkdir -p "$scratch/training"
run_suite training training_test.c "$model" "$scratch/training"

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
