#!/usr/bin/env bash
# One GPU job for the device machine (issues #4 and #6): replay a bench run made elsewhere, run a scripted bench
# on the GPU (kernels timed, so the faster correct kernel must win), then the solve/bench/client tests on CUDA.
# usage (device tool, repository root, carrying .whl/ and runs/scripted-cpu): bash benchmarks/bench_gpu.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
RUNS=/tmp/ks-runs
mkdir -p "$OUT" "$RUNS"
# The image has no openai SDK: install the carried wheels (openai and what it needs), nothing from the network.
python3 -m pip install -q --no-index --find-links .whl openai 2>&1 | tail -2
python3 -c "import torch, triton, openai, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, 'openai', openai.__version__, torch.cuda.get_device_name())"

echo "== replay of runs/scripted-cpu on this GPU"
timeout 240 python3 -m kernelsearch bench --replay runs/scripted-cpu --out "$RUNS/replay-h100" 2>&1 | tail -12
echo "== scripted bench on this GPU"
timeout 300 python3 benchmarks/scripted_bench.py "$RUNS/scripted-h100" --device cuda > "$OUT/scripted_bench.log" 2>&1
tail -10 "$OUT/scripted_bench.log"
tar czf "$OUT/runs.tgz" -C "$RUNS" .
[ "${SKIP_TESTS:-0}" = 1 ] && exit 0
echo "== tests on CUDA"
KS_TEST_DEVICE=cuda timeout 420 python3 -m pytest -q -p no:cacheprovider tests/test_solve.py tests/test_bench.py \
    tests/test_llm_client.py tests/test_answer.py tests/test_search.py "tests/verify/test_verify.py::test_a_fresh_worker_request_gets_a_new_process" \
    -rfs --durations=8 > "$OUT/pytest.log" 2>&1
tail -25 "$OUT/pytest.log"
