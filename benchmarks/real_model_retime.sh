#!/usr/bin/env bash
# Issue #26 on a GPU, one device call: the kept kernels of the real-model sample re-timed at the problems' original
# sizes (`kernelsearch retime` over a folder laid out as a bench: RUNS/problems/KEY, two workers on the GPU, each
# timing alone), then the attention runs' kernels forward beside FlexAttention at their specs' GPU shapes.
#   usage (device tool, repository root, the folders carried): bash benchmarks/real_model_retime.sh RUNS [ATTENTION_RUNS]
# ATTENTION_RUNS holds attn_neighborhood_2d/ and attn_relative_position/ (solve SPEC runs). Back under $OUT: the
# logs, attention_vs_flex.json, and RUNS with its rewritten summaries and stores as retimed.tar.gz. A re-time cut
# by its limit goes on where it stopped when run again on the tarball's RUNS (what this GPU timed is kept).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
RUNS="$1"; ATTENTION="${2:-}"
mkdir -p "$OUT"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
began=$(date +%s)
timeout "${RETIME_TIMEOUT:-380}" python3 -m kernelsearch retime "$RUNS" --device cuda --workers-per-gpu 2 \
    > "$OUT/retime.log" 2>&1
echo "retime exit $? after $(( $(date +%s) - began )) s"
grep -E "headline|re-timed|error" "$OUT/retime.log" | tail -25
tar czf "$OUT/retimed.tar.gz" -C "$(dirname "$RUNS")" "$(basename "$RUNS")"
[ -n "$ATTENTION" ] || exit 0
timeout "${FLEX_TIMEOUT:-150}" python3 benchmarks/attention_model_vs_flex.py \
    examples/attention/neighborhood_2d.py "$ATTENTION/attn_neighborhood_2d" \
    examples/attention/relative_position.py "$ATTENTION/attn_relative_position" --json "$OUT/attention_vs_flex.json" \
    > "$OUT/attention_vs_flex.log" 2>&1
echo "attention exit $? after $(( $(date +%s) - began )) s"
tail -40 "$OUT/attention_vs_flex.log"
