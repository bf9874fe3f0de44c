#!/usr/bin/env bash
# One short GPU job for issue #15: CUDA IPC between a worker and its answer keeper under each sandbox setting, the
# keeper probe at 19_ReLU's size inside bubblewrap and without it, pass-through candidates at full size inside it,
# and the sandbox's CUDA tests. Each step's output is also kept under $OUT (a call cut short keeps what it did).
#   usage (device tool, repository root, carry ["kb", ".bwrap"]): bash benchmarks/gpu_keeper_sandbox.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
[ -x .bwrap/bwrap ] && export PATH="$PWD/.bwrap:$PATH" LD_LIBRARY_PATH="$PWD/.bwrap/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== IPC settings"
timeout 75 python3 benchmarks/keeper_ipc_matrix.py 2>&1 | tee "$OUT/matrix.log" | tail -8
echo "== probe (19_ReLU, 6.4 GB output)"
timeout 90 python3 benchmarks/keeper_ipc_probe.py --problem kb/level1/19_ReLU.py --kernel benchmarks/kernels/19_ReLU.py \
    2>&1 | tee "$OUT/probe.log" | head -30
echo "== pass-through candidates, untimed, inside bubblewrap"
timeout 70 python3 benchmarks/kernelbench_sweep.py --kernelbench-dir kb --deadline-s 50 --levels 1 --problems 3,5,19 \
    --modes untimed --out "$OUT/sweep.jsonl" > "$OUT/sweep.log" 2>&1
grep -E "^L|untimed:" "$OUT/sweep.log" | tail -5
echo "== the sandbox's CUDA tests"
KS_TEST_DEVICE=cuda timeout 70 python3 -m pytest -q -p no:cacheprovider -rfE tests/verify/containment/test_os_sandbox.py \
    -k "sandboxed_pool or cuda_candidate or keeper_shares" > "$OUT/pytest.log" 2>&1
grep -E "^(FAILED|ERROR|E )|passed|failed" "$OUT/pytest.log" | head -12
echo "left in /dev/shm: $(ls /dev/shm | grep -c kernelsearch)"
