#!/usr/bin/env bash
# One GPU job for the device machine: the verifier at KernelBench's own sizes. Prints versions, runs the given
# sweep arguments (benchmarks/kernelbench_sweep.py) and, with SUITE=1, the verifier's tests on CUDA first.
#   usage (device tool, repository root, KernelBench carried as kb/):
#   SUITE=1 bash benchmarks/gpu_verifier_scale.sh --levels 1 --problems 19,4 --modes untimed,timed
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv,noheader || true
if [ "${SUITE:-0}" = 1 ]; then
    KS_TEST_DEVICE=cuda timeout "${SUITE_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider -n 4 -rfs \
        tests/verify/test_verify.py tests/verify/worker/test_hacks.py tests/verify/worker/test_poison_across_jobs.py tests/verify/worker/test_cuda_candidates.py \
        > "$OUT/pytest.log" 2>&1
    tail -25 "$OUT/pytest.log"
fi
[ "$#" -gt 0 ] && python3 benchmarks/kernelbench_sweep.py --kernelbench-dir kb --out "$OUT/sweep.jsonl" "$@" 2>&1 \
    | tee "$OUT/sweep.log" | tail -60
