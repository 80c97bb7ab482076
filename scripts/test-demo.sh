#!/usr/bin/env bash
# Runs the main job (bin/demo) on its reduced budget (MORAGENT_DEMO_QUICK=1) into a scratch
# folder and checks what it promises: the table, the learning curve and the expert timeline as
# valid PNG files, the metrics and the policy bundle, training rollouts that win more often at
# the end than at the start, and a trained policy whose held-out success beats the untrained one's. Ends with one line "demo: N passed, M failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi; }
if MORAGENT_DEMO_QUICK=1 bin/demo --out "$scratch/run" 2>&1 | tee "$scratch/demo.log"; then
  passed=$((passed + 1)); echo "ok   the demo runs"
else
  failed=$((failed + 1)); echo "FAIL the demo exited with an error"
fi
run="$scratch/run"
check "it prints and writes the table" "grep -q '| \*\*all\*\* |' '$scratch/demo.log' && grep -q '| task type | untrained | trained |' '$run/table.md'"
for image in learning_curve.png expert_timeline.png; do
  check "$image is a PNG" "[ \"\$(head -c 8 '$run/$image' | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a ]"
done
check "metrics.jsonl has one line per update" "[ \$(wc -l < '$run/metrics.jsonl') -ge 2 ]"
check "the policy bundle is complete" "[ -f '$run/bundle/manifest.json' ] && [ -f '$run/bundle/experts.safetensors' ]"
# GiGPO learns on its own rollouts: success over the last ten updates (640 episodes) beats the
# first ten's (in the runs so far 0.26-0.27 -> 0.31-0.33, about three standard errors).
check "training-rollout success rises (last 10 updates over the first 10)" \
  "python3 -c \"import json,sys; r=[json.loads(l)['success_rate'] for l in open('$run/metrics.jsonl')]; a=sum(r[:10])/10; b=sum(r[-10:])/10; print('rollouts %.3f -> %.3f' % (a, b)); sys.exit(0 if len(r) >= 20 and b > a else 1)\""
check "held-out success beats the untrained policy" \
  "python3 -c \"import json,sys; r=json.load(open('$run/results.json')); print('success', r['before']['success'], '->', r['after']['success']); sys.exit(0 if r['after']['success'] > r['before']['success'] else 1)\""
echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
