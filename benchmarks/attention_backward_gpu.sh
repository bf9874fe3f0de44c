#!/usr/bin/env bash
# Issue #27 on the GPU, one device call: where the backward's time goes on the examples whose forward+backward lost
# to Flex (per-kernel GPU time of the default call), then their backward block sizes tuned at S=4096, D=128 and 64
# (the forward's from attention_configs_h100.json), each shape benched again with the tuned backward.
#   usage (device tool, repository root): bash benchmarks/attention_backward_gpu.sh
# Back under $OUT: profile/ (before tuning), tuned/ (attention_configs.json: merge its backward configs into
# benchmarks/attention_configs_h100.json; attention_bench.json and .md with the tuned backward).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
SPECS="${SPECS:-document_mask,sliding_window,prefix_lm,neighborhood_2d}"
mkdir -p "$OUT/profile" "$OUT/tuned"
OUT="$OUT/profile" timeout 90 python3 benchmarks/attention_bench.py --specs document_mask --shapes 4096x128 \
    --configs benchmarks/attention_configs_h100.json --profile --no-autotune > "$OUT/profile/bench.log" 2>&1
echo "profile: exit $?"; grep -v "^==" "$OUT/profile/bench.log" | tail -8
OUT="$OUT/tuned" timeout "${TUNE_TIMEOUT:-420}" python3 benchmarks/attention_bench.py --specs "$SPECS" \
    --shapes 4096x128,4096x64 --configs benchmarks/attention_configs_h100.json --tune-backward --profile \
    --no-autotune --budget-s 400 > "$OUT/tuned/bench.log" 2>&1
echo "tuned: exit $?"; grep -E "tuned |GPU ms|^\|" "$OUT/tuned/bench.log" | tail -40
