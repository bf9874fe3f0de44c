#!/usr/bin/env bash
# One GPU job for issue #15 (containment): is bubblewrap usable on this machine, do the verifier's tests pass on
# CUDA with the answer keeper, and do KernelBench's pass-through candidates and our real kernels still verify
# `correct` at full size (no false rejects), with the run-time audit hook off (the GPU default) and on.
#   usage (device tool, repository root, carry ["kb", ".bwrap"]): bash benchmarks/gpu_containment.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
# Debian's bwrap binary, carried: the image has none and installs nothing.
[ -x .bwrap/bwrap ] && export PATH="$PWD/.bwrap:$PATH" LD_LIBRARY_PATH="$PWD/.bwrap/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv,noheader || true
python3 -c "from kernelsearch.verify.containment.sandbox import bubblewrap_problem as p; print('bubblewrap:', p() or 'usable')"
XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n 4")
KS_TEST_DEVICE=cuda timeout "${SUITE_TIMEOUT:-150}" python3 -m pytest -q -p no:cacheprovider $XDIST -rfs \
    tests/verify/keeper/test_keeper.py tests/verify/test_verify.py tests/verify/worker/test_hacks.py tests/verify/worker/test_poison_across_jobs.py \
    tests/verify/worker/test_cuda_candidates.py tests/verify/containment/test_audit.py tests/verify/containment/test_os_sandbox.py > "$OUT/pytest.log" 2>&1
tail -30 "$OUT/pytest.log"
sweep() {  # name, deadline seconds, sweep arguments...
    local name=$1 deadline=$2; shift 2
    echo "== $name"
    python3 benchmarks/kernelbench_sweep.py --kernelbench-dir kb --deadline-s "$deadline" --out "$OUT/$name.jsonl" "$@" \
        > "$OUT/$name.log" 2>&1
    tail -4 "$OUT/$name.log"
}
sweep l1_untimed_audit_off 90 --levels 1 --modes untimed
KS_AUDIT=on sweep l1_untimed_audit_on 40 --levels 1 --modes untimed
sweep kernels_timed 45 --kernels benchmarks/kernels --repeat 1
