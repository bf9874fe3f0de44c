#!/usr/bin/env bash
# One GPU job for the device machine: the verifier's overhead and sample verdicts at realistic sizes (alone on
# the GPU, so the timings are clean), then the test suite on CUDA. What it prints and writes under $OUT goes
# into benchmarks/RESULTS.md.   usage (device tool, repository root): bash benchmarks/gpu_suite.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true

timeout 200 python3 benchmarks/verifier_overhead.py --json "$OUT/overhead.json" > "$OUT/overhead.log" 2>&1
tail -8 "$OUT/overhead.log"
# Four pytest processes share the GPU (pytest-xdist): correctness does not care, and the suite's few timing
# tests check the verdict's structure, not its numbers.
KS_TEST_DEVICE=cuda timeout "${SUITE_TIMEOUT:-360}" python3 -m pytest -q -p no:cacheprovider -n 4 tests -rfs \
    --durations=10 --junitxml="$OUT/junit.xml" > "$OUT/pytest.log" 2>&1
tail -45 "$OUT/pytest.log"
