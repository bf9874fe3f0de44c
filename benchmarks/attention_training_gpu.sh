#!/usr/bin/env bash
# Issue #27 on the GPU in one device call (at most 9 minutes): the training example under
# torch.compile(fullgraph=True), its gradients against FlexAttention's at every step; then attention_bench at S=4096,
# D=128 then D=64, every example: forward and forward+backward, the default call (`attention(q, k, v)`, block
# indexes kept by the module) beside the prebuilt one, against Flex (default; max-autotune as the budget allows).
#   usage (device tool, repository root): bash benchmarks/attention_training_gpu.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
timeout 150 python3 examples/attention_training.py --device cuda --compile --steps 3 > "$OUT/training.log" 2>&1
echo "training example: exit $?"; tail -4 "$OUT/training.log"
python3 benchmarks/attention_bench.py --shapes 4096x128,4096x64 --budget-s "${BUDGET_S:-360}" \
    --configs benchmarks/attention_configs_h100.json > "$OUT/attention_bench.log" 2>&1
echo "attention_bench: exit $?"; grep -v "^  \|^==" "$OUT/attention_bench.log" | tail -45
