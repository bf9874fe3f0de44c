#!/usr/bin/env bash
# GPU job: for each attention example given (default: all), tune, verify at full size and bench against
# FlexAttention and SDPA. Summaries land in $OUT/attn/*_summary.json; the log in $OUT/attention.log.
#   usage (device tool, repository root): bash benchmarks/attention_gpu.sh [examples/attention/NAME.py ...]
# Tuning one example (3 shapes; on Hopper 42 forward, 3-5 persistent and 33 backward configs each) takes ~5 min:
# one per call.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT/attn"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(examples/attention/*.py)
for spec in "${specs[@]}"; do
    echo "== $spec"
    timeout "${SPEC_TIMEOUT:-560}" python3 -m kernelsearch attention "$spec" --device cuda --tune --bench \
        --out "$OUT/attn" 2>&1 | grep -v "^  tune .*skipped" | tee -a "$OUT/attention.log" | tail -12
done
rm -rf "$OUT/attn/problems"
