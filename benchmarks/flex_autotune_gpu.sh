#!/usr/bin/env bash
# GPU job: the D=128 S=4096 shape of a few examples, with FlexAttention also under
# max-autotune-no-cudagraphs (each of its compiles takes minutes, so not every shape gets it).
#   usage (device tool, repository root): bash benchmarks/flex_autotune_gpu.sh [examples/attention/NAME.py ...]
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT/autotune"
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(examples/attention/relative_position.py examples/attention/causal.py)
for spec in "${specs[@]}"; do
    echo "== $spec"
    timeout "${SPEC_TIMEOUT:-280}" python3 -m kernelsearch attention "$spec" --device cuda --tune --bench \
        --flex-autotune --shape 1 --trials 2 --out "$OUT/autotune" 2>&1 | grep -E "spec=|tuned|correct|incorrect|error" \
        | tee -a "$OUT/flex_autotune.log"
done
rm -rf "$OUT/autotune"
