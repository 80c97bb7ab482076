#!/usr/bin/env bash
# Runs the tests of the C ABI and its bindings against the debug build of libmoragent.so and
# ends with one line "bindings: N passed, M failed":
#   C       Tests/bindings/c/run.sh (header as C99/C++17, every function, bad calls, plugins,
#           exports, ldd)
#   Python  pytest Tests/bindings/python (fixture models, errors, handles, threads, experts,
#           routers, plugins, policies, hypothesis)
#   household  pytest Tests/household (the example environment and the demo's PNG plots)
#   Lua     luajit Tests/bindings/lua/test.lua
#   the three generate examples on the qwen2-tiny fixture (each runs, and all three print the same
#   continuations), the three agent loops (each runs its two episodes and prints the routing
#   trace, the same lines in all three; Python's also with a router written in Python), the three
#   RL loops (each makes its 3 updates and reloads its bundle; the C and Lua ones play the same
#   worlds and print the same lines), the C example built through moragent.pc, and
#   bindings/python installed by pip.
# Assumes `swift build` (debug) was run; installs pytest and hypothesis with pip when missing.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
lib_dir="$root/.build/debug"
if [ ! -f "$lib_dir/libmoragent.so" ]; then
  echo "test-bindings: $lib_dir/libmoragent.so is missing; run \`swift build\` first" >&2
  echo "bindings: 0 passed, 1 failed"
  exit 1
fi
model="$root/Tests/MoRAgentTests/Fixtures/models/qwen2-tiny"
export MORAGENT_LIBRARY="$lib_dir/libmoragent.so"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export HYPOTHESIS_STORAGE_DIRECTORY="$scratch/hypothesis"

python3 -c "import pytest, hypothesis" 2>/dev/null || python3 -m pip install -q pytest hypothesis

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
# Adds "NAME: N passed, M failed" from a suite's output, or counts a failure if it is missing.
add_counts() {
  local name="$1" output="$2"
  if [[ "$output" =~ $name:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
  else
    fail "$name suite did not report its counts"
  fi
}

echo "== C"
c_out="$(bash Tests/bindings/c/run.sh "$lib_dir" 2>&1)"; echo "$c_out"
add_counts c "$(echo "$c_out" | tail -n 1)"

echo "== Python"
py_out="$(python3 -m pytest -q -p no:cacheprovider -p no:benchmark Tests/bindings/python 2>&1)"; py_status=$?
echo "$py_out"
summary="$(echo "$py_out" | tail -n 1)"
py_passed=0; py_failed=0
[[ "$summary" =~ ([0-9]+)\ passed ]] && py_passed=${BASH_REMATCH[1]}
[[ "$summary" =~ ([0-9]+)\ failed ]] && py_failed=${BASH_REMATCH[1]}
[[ "$summary" =~ ([0-9]+)\ errors? ]] && py_failed=$((py_failed + BASH_REMATCH[1]))
if [ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi
passed=$((passed + py_passed)); failed=$((failed + py_failed))
echo "python: $py_passed passed, $py_failed failed"

echo "== household environment and plots"
hh_out="$(PYTHONPATH="$root/examples/household" python3 -m pytest -q -p no:cacheprovider -p no:benchmark Tests/household 2>&1)"; hh_status=$?
echo "$hh_out"
summary="$(echo "$hh_out" | tail -n 1)"
hh_passed=0; hh_failed=0
[[ "$summary" =~ ([0-9]+)\ passed ]] && hh_passed=${BASH_REMATCH[1]}
[[ "$summary" =~ ([0-9]+)\ failed ]] && hh_failed=${BASH_REMATCH[1]}
if [ "$hh_status" -ne 0 ] && [ "$hh_failed" -eq 0 ]; then hh_failed=1; fi
passed=$((passed + hh_passed)); failed=$((failed + hh_failed))
echo "household: $hh_passed passed, $hh_failed failed"

echo "== Lua"
lua_out="$(luajit Tests/bindings/lua/test.lua 2>&1)"; echo "$lua_out"
add_counts lua "$(echo "$lua_out" | tail -n 1)"

echo "== examples"
# Each example's stdout without its first line (the version) and with the stop reason spelled
# the same way: the three must agree token for token.
run_example() {
  local name="$1"; shift
  if "$@" > "$scratch/$name.out" 2> "$scratch/$name.err" && grep -q '^greedy (' "$scratch/$name.out" \
     && grep -q '^sampled (' "$scratch/$name.out"; then
    pass "example $name"
  else
    fail "example $name: $(cat "$scratch/$name.err")"
  fi
}
if make -s -C examples/c LIB_DIR="$lib_dir" >/dev/null; then
  run_example c examples/c/build/generate "$model"
else
  fail "example c: build"
fi
run_example python env PYTHONPATH="$root/bindings/python" python3 examples/python/generate.py "$model"
run_example lua env LUA_PATH="$root/bindings/lua/?.lua;;" luajit examples/lua/generate.lua "$model"
if [ -s "$scratch/c.out" ] && cmp -s "$scratch/c.out" "$scratch/python.out" && cmp -s "$scratch/c.out" "$scratch/lua.out"; then
  pass "the three examples print the same continuations"
else
  fail "the examples disagree: $(diff "$scratch/c.out" "$scratch/python.out"; diff "$scratch/c.out" "$scratch/lua.out")"
fi

echo "== agent loops"
# Each exits 0 and prints one trace line per episode (two). The C, Lua and Python runs use the
# same world and seeds, so the phase-router part of their output must agree line for line.
run_agent() {
  local name="$1"; shift
  if "$@" > "$scratch/agent-$name.out" 2> "$scratch/agent-$name.err" \
     && [ "$(grep -c '^trace: {"episode":[01],' "$scratch/agent-$name.out")" -eq 2 ]; then
    pass "agent loop $name"
  else
    fail "agent loop $name: $(cat "$scratch/agent-$name.err")"
  fi
}
run_agent c examples/c/build/agent_loop "$model"
run_agent python env PYTHONPATH="$root/bindings/python" python3 examples/python/agent_loop.py "$model"
run_agent lua env LUA_PATH="$root/bindings/lua/?.lua;;" luajit examples/lua/agent_loop.lua "$model"
if [ "$(grep -c '^custom trace: {"episode":[01],' "$scratch/agent-python.out")" -eq 2 ]; then
  pass "agent loop python with a router written in Python"
else
  fail "agent loop python printed no trace for its Python router"
fi
grep -v '^custom' "$scratch/agent-python.out" > "$scratch/agent-python-phase.out"
if [ -s "$scratch/agent-c.out" ] && cmp -s "$scratch/agent-c.out" "$scratch/agent-lua.out" \
   && cmp -s "$scratch/agent-c.out" "$scratch/agent-python-phase.out"; then
  pass "the three agent loops print the same steps and trace"
else
  fail "the agent loops disagree: $(diff "$scratch/agent-c.out" "$scratch/agent-python-phase.out"; diff "$scratch/agent-c.out" "$scratch/agent-lua.out")"
fi
# The RL loops: each exits 0, prints one line per update (three) and reloads its saved bundle
# into a fresh trainer with the same experts. C and Lua play the same worlds with the same seeds.
run_rl() {
  local name="$1"; shift
  if "$@" > "$scratch/rl-$name.out" 2> "$scratch/rl-$name.err" \
     && [ "$(grep -c '^update [123]: ' "$scratch/rl-$name.out")" -eq 3 ] \
     && grep -q '^bundle reloaded into a fresh trainer: expert 0 identical$' "$scratch/rl-$name.out"; then
    pass "RL loop $name"
  else
    fail "RL loop $name: $(cat "$scratch/rl-$name.out" "$scratch/rl-$name.err")"
  fi
}
run_rl c examples/c/build/rl_loop "$model"
run_rl python env PYTHONPATH="$root/bindings/python" python3 examples/python/rl_loop.py "$model"
run_rl lua env LUA_PATH="$root/bindings/lua/?.lua;;" luajit examples/lua/rl_loop.lua "$model"
if [ -s "$scratch/rl-c.out" ] && cmp -s "$scratch/rl-c.out" "$scratch/rl-lua.out"; then
  pass "the C and Lua RL loops print the same lines"
else
  fail "the C and Lua RL loops disagree: $(diff "$scratch/rl-c.out" "$scratch/rl-lua.out")"
fi

echo "== packaging"
flags="$(pkg-config --define-variable=prefix="$root" --define-variable=libdir="$lib_dir" --cflags --libs "$root/moragent.pc" 2>&1)"
if cc -std=c99 examples/c/generate.c $flags -Wl,-rpath,"$lib_dir" -o "$scratch/generate-pc" 2>"$scratch/pc.err" \
   && "$scratch/generate-pc" "$model" 2>/dev/null | cmp -s - "$scratch/c.out"; then
  pass "moragent.pc builds the C example"
else
  fail "moragent.pc: $flags $(cat "$scratch/pc.err")"
fi
# Installed from a copy, so the build leaves nothing in the tree.
cp -r bindings/python "$scratch/python-src"
if python3 -m pip install -q --no-deps --target "$scratch/site" "$scratch/python-src" >"$scratch/pip.log" 2>&1 \
   && (cd "$scratch" && PYTHONPATH="$scratch/site" python3 -c \
       "import moragent, sys; sys.exit(moragent.library_version() != moragent.__version__ or not moragent.__file__.startswith('$scratch/site'))"); then
  pass "bindings/python installs with pip"
else
  fail "bindings/python installs with pip: $(tail -n 5 "$scratch/pip.log")"
fi

echo "bindings: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
