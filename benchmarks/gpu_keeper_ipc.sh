#!/usr/bin/env bash
# One short GPU job for issue #15: the answer keeper reading the candidate's outputs through CUDA IPC, at
# KernelBench's own sizes, inside bubblewrap (the default where it is usable) and without it; then one re-time.
#   usage (device tool, repository root, carry ["kb", ".bwrap", "relayruns"]):
#   bash benchmarks/gpu_keeper_ipc.sh KERNELS_DIR RUN_DIR...   (re-times runs until LIMIT_S, default 220 s, is near)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
[ -x .bwrap/bwrap ] && export PATH="$PWD/.bwrap:$PATH" LD_LIBRARY_PATH="$PWD/.bwrap/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
python3 -c "from kernelsearch.verify.sandbox import bubblewrap_problem as p; print('bubblewrap:', p() or 'usable')"
sweep() {  # name, deadline seconds, sweep arguments...
    local name=$1 deadline=$2; shift 2
    echo "== $name"
    timeout $((deadline + 30)) python3 benchmarks/kernelbench_sweep.py --kernelbench-dir kb --deadline-s "$deadline" \
        --out "$OUT/$name.jsonl" "$@" > "$OUT/$name.log" 2>&1
    grep -E "^L|untimed:|kernel:" "$OUT/$name.log" | tail -8
}
sweep ipc_untimed_sandbox 25 --levels 1 --problems 3,5,19 --modes untimed
KS_OS_SANDBOX=off sweep ipc_untimed_no_sandbox 5 --levels 1 --problems 19 --modes untimed
sweep ipc_kernels_timed 15 --kernels "$1" --repeat 1
shift
for run in "$@"; do
    left=$(( ${LIMIT_S:-220} - SECONDS ))
    [ "$left" -lt 30 ] && { echo "no time left for $run"; continue; }
    name=$(basename "$run"); echo "== retime $name (${left}s left)"
    timeout "$left" python3 -m kernelsearch retime "$run" --device cuda > "$OUT/retime_$name.log" 2>&1
    echo "exit $?" >> "$OUT/retime_$name.log"; tail -12 "$OUT/retime_$name.log"
    cp "$run/summary.json" "$OUT/retime_${name}_summary.json" 2>/dev/null
done
