#!/usr/bin/env bash
# Issue #26: the fixed sample (6 Level 1, 6 Level 2, 4 Level 3 problems of KernelBench, and two attention specs)
# searched by `solve` with a real model behind ../shared/tools/relay_openai.py, on this machine's CPU (Triton's
# interpreter, --shrink auto); the kept kernels are re-timed on a GPU later (`kernelsearch retime`,
# benchmarks/gpu_retime_runs.sh). The same settings for every problem: 2 lanes, 8 attempts (4 a lane), 60 minutes.
#   usage: bash benchmarks/real_model_sample.sh OUT_DIR KEY ...      KEY: one of the names in SAMPLE below, or all
# Each problem gets a relay on its own port (8800 + its place in SAMPLE) that writes each request to
# OUT_DIR/relay/KEY/NNN.prompt.json and answers with OUT_DIR/relay/KEY/NNN.answer.md once someone writes it; the
# run directory is OUT_DIR/problems/KEY (OUT_DIR is laid out as a bench's: `kernelsearch report OUT_DIR` draws every
# problem in one report), the log OUT_DIR/logs/KEY.log. When solve ends, OUT_DIR/relay/KEY/finished holds its exit
# code. KernelBench's problems are read from $KERNELBENCH (default ../shared/kernelbench).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KERNELBENCH="${KERNELBENCH:-$ROOT/../shared/kernelbench}"
RELAY="${RELAY:-$ROOT/../shared/tools/relay_openai.py}"
SETTINGS=(--device cpu --shrink auto --lanes 2 --max-attempts 8 --budget 60m --model relay)
SAMPLE=(
    l1_1:level1/1_Square_matrix_multiplication_.py l1_23:level1/23_Softmax.py l1_40:level1/40_LayerNorm.py
    l1_47:level1/47_Sum_reduction_over_a_dimension.py
    l1_63:level1/63_conv_standard_2D__square_input__square_kernel.py l1_95:level1/95_CrossEntropyLoss.py
    l2_12:level2/12_Gemm_Multiply_LeakyReLU.py l2_18:level2/18_Matmul_Sum_Max_AvgPool_LogSumExp_LogSumExp.py
    l2_29:level2/29_Matmul_Mish_Mish.py l2_37:level2/37_Matmul_Swish_Sum_GroupNorm.py
    l2_52:level2/52_Conv2d_Activation_BatchNorm.py l2_76:level2/76_Gemm_Add_ReLU.py
    l3_1:level3/1_MLP.py l3_4:level3/4_LeNet5.py l3_19:level3/19_MobileNetV1.py l3_44:level3/44_MiniGPTBlock.py
    attn_relative_position:examples/attention/relative_position.py
    attn_neighborhood_2d:examples/attention/neighborhood_2d.py
)
[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR KEY ... (or all)" >&2; exit 2; }
OUT="$1"; shift
[ "$1" = all ] && set -- $(printf '%s\n' "${SAMPLE[@]}" | cut -d: -f1)
mkdir -p "$OUT/relay" "$OUT/problems" "$OUT/logs"
solves=()
# No relay or solve outlives this script: the whole process group is stopped (solve stops its own workers).
trap 'trap - INT TERM EXIT; kill 0 2>/dev/null' INT TERM EXIT
for key in "$@"; do
    place=-1; file=""
    for i in "${!SAMPLE[@]}"; do [ "${SAMPLE[$i]%%:*}" = "$key" ] && { place=$i; file="${SAMPLE[$i]#*:}"; }; done
    [ "$place" -ge 0 ] || { echo "unknown problem key: $key" >&2; exit 2; }
    case "$file" in examples/*) path="$ROOT/$file" ;; *) path="$KERNELBENCH/$file" ;; esac
    port=$((8800 + place))
    python3 "$RELAY" "$port" "$OUT/relay/$key" > "$OUT/logs/$key.relay.log" 2>&1 &
    (
        sleep 1
        echo "$(date -u +%FT%TZ) solve $path" > "$OUT/logs/$key.log"
        kernelsearch solve "$path" "${SETTINGS[@]}" --base-url "http://127.0.0.1:$port/v1" --out "$OUT/problems/$key" \
            >> "$OUT/logs/$key.log" 2>&1
        code=$?
        echo "$(date -u +%FT%TZ) exit $code" >> "$OUT/logs/$key.log"
        echo "$code" > "$OUT/relay/$key/finished"
    ) &
    solves+=($!)
done
wait "${solves[@]}"  # then the trap (EXIT) stops the relays
