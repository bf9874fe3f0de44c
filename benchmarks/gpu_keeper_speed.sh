#!/usr/bin/env bash
# One GPU job: how long large problems take to verify with the answer keeper, inside bubblewrap: pass-through
# candidates of 3_Batched, 5_Matrix_scalar and 19_ReLU untimed, and L1 36 RMSNorm (7 GiB in and out) timed, each
# job's elapsed time in the verdict (benchmarks/RESULTS.md, issue #15's section). Each step's output is kept under $OUT.
#   usage (device tool, repository root, carry ["kb", ".bwrap"]): bash benchmarks/gpu_keeper_speed.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
[ -x .bwrap/bwrap ] && export PATH="$PWD/.bwrap:$PATH" LD_LIBRARY_PATH="$PWD/.bwrap/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== pass-through candidates, untimed (3, 5, 19)"
timeout 150 python3 benchmarks/kernelbench_sweep.py --kernelbench-dir kb --deadline-s 130 --levels 1 --problems 3,5,19 \
    --modes untimed --out "$OUT/sweep.jsonl" > "$OUT/sweep.log" 2>&1
grep -E "^L|untimed:" "$OUT/sweep.log" | tail -5
echo "== L1 36 RMSNorm, the relay run's attempt 1, timed"
start=$(date +%s.%N)
timeout 170 python3 -m kernelsearch verify kb/level1/36_RMSNorm_.py \
    benchmarks/results/relay-2026-12-05/l1_36/attempt1.py --device cuda --json > "$OUT/rmsnorm.json" 2> "$OUT/rmsnorm.err"
echo "exit $? in $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
python3 -c "import json; v = json.load(open('$OUT/rmsnorm.json')); print(v['status'], v.get('message', '')[:200]); \
print({k: v[k] for k in ('elapsed_s', 'step_s', 'reference_calls', 'memory') if k in v})" 2>&1 | head -5
echo "left in /dev/shm: $(ls /dev/shm | grep -c kernelsearch)"
