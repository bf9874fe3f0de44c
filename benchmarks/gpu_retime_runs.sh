#!/usr/bin/env bash
# One GPU job for issue #11: re-time every correct attempt of CPU search runs at the problems' original sizes
# (`kernelsearch retime`), check the performance feedback on real verdicts, and run the GPU re-time test.
#   usage (device tool, repository root, the runs carried): bash benchmarks/gpu_retime_runs.sh RUN_DIR...
# Each run's summary.json (with every attempt's speedups), best.py and retime log land in $OUT/retime/<run>/.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT/retime"
for run in "$@"; do
    name=$(basename "$run")
    mkdir -p "$OUT/retime/$name"
    echo "== retime $name"
    timeout "${RETIME_TIMEOUT:-150}" python3 -m kernelsearch retime "$run" --device cuda > "$OUT/retime/$name/retime.log" 2>&1
    echo "exit $?" >> "$OUT/retime/$name/retime.log"
    tail -12 "$OUT/retime/$name/retime.log"
    cp "$run/summary.json" "$run/best.py" "$OUT/retime/$name/" 2>/dev/null
done
echo "== feedback on real verdicts"
timeout 90 python3 benchmarks/feedback_gpu.py --device cuda --json "$OUT/feedback_gpu.json" > "$OUT/feedback_gpu.log" 2>&1
echo "exit $?"; tail -30 "$OUT/feedback_gpu.log"
echo "== the GPU re-time test"
KS_TEST_DEVICE=cuda timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_retime.py 2>&1 | tail -4
