#!/usr/bin/env bash
# One GPU job for the device machine: the test suite on CUDA, then the verifier's own overhead and sample
# verdicts at realistic sizes. Everything it prints and writes under $OUT goes into benchmarks/RESULTS.md.
#   usage (device tool, repository root): bash benchmarks/gpu_suite.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true

KS_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests -rs --junitxml="$OUT/junit.xml" \
    2>&1 | tee "$OUT/pytest.log" | tail -40
python3 benchmarks/verifier_overhead.py --json "$OUT/overhead.json" 2>&1 | tee "$OUT/overhead.log"
