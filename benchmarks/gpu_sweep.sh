#!/usr/bin/env bash
# The verifier's GPU regression sweep (issue #23), every wall up (bubblewrap, the answer keeper, the audit hook), in
# two device calls of at most 9 minutes each, in a fixed order; every later change to the verifier's path runs it
# and compares with benchmarks/RESULTS.md:
#   bash benchmarks/gpu_sweep.sh 1   the verifier's GPU tests; every Level 1 and Level 3 problem untimed (pass-through)
#   bash benchmarks/gpu_sweep.sh 2   every Level 2 problem untimed; the CUDA-build batch; the kernels' repeat pairs at
#                                    both sizes; a timed sample; two workers on one GPU
#   bash benchmarks/gpu_sweep.sh 3   a short call: problems a change touched, small repeats, a timed sample
#   bash benchmarks/gpu_sweep.sh 4   call 2 without what earlier calls judged (Level 2 untimed, the CUDA batch, the
#                                    small repeats): every 10th problem untimed (a regression slice), the repeat
#                                    pairs at KernelBench's sizes, a timed sample with L3 26_ShuffleNet, two workers
# (1 and 2 together judge all 250 problems: about 2.2 s a problem on the H100, 550 s in all, too long for one call)
# (device tool, repository root, carry ["kb", ".bwrap"]: KernelBench's levels 1-3 and Debian's bwrap with its
# libraries; RESULTS.md says how to make both). Results under $OUT; the tables: python3 benchmarks/sweep_table.py DIR
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/ks-out}"
mkdir -p "$OUT"
[ -x .bwrap/bwrap ] && export PATH="$PWD/.bwrap:$PATH" LD_LIBRARY_PATH="$PWD/.bwrap/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv,noheader || true
python3 -c "from kernelsearch.verify.containment.sandbox import bubblewrap_problem as p; print('bubblewrap:', p() or 'usable')"
began=$(date +%s)
left() { echo $((${BUDGET_S:-530} - $(date +%s) + began)); }  # BUDGET_S: the call's seconds
case "${1:-1}" in
1)  # hacks caught on the GPU first, then every Level 1 and Level 3 problem
    XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n 4")
    KS_TEST_DEVICE=cuda timeout 110 python3 -m pytest -q -p no:cacheprovider $XDIST -rfs tests/verify/worker/test_hacks.py \
        tests/verify/worker/test_cuda_candidates.py tests/verify/harness/test_timing.py tests/verify/harness/test_correctness.py tests/verify/worker/test_poison_across_jobs.py \
        > "$OUT/pytest.log" 2>&1
    tail -15 "$OUT/pytest.log"
    python3 benchmarks/gpu_sweep.py untimed --levels 1,3 --deadline-s "$(left)" --out "$OUT" > "$OUT/sweep.log" 2>&1
    ;;
2)  # every Level 2 problem, the builds, the repeat pairs, a timed sample, two workers
    python3 benchmarks/gpu_sweep.py untimed,cuda,repeat --levels 2 --sizes kernelbench,small --seconds untimed=200 --seconds cuda=100 \
        --deadline-s "$(( $(left) - 150 ))" --out "$OUT" > "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py timed --every 20 --deadline-s "$(( $(left) - 60 ))" --out "$OUT" \
        >> "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py share --share-problems 5 --deadline-s 50 --out "$OUT" >> "$OUT/sweep.log" 2>&1
    ;;
3)  # a short call: problems a change touched, the small kernels' repeat pairs, a timed sample, two workers
    python3 benchmarks/gpu_sweep.py untimed,repeat --levels 1 --problems 45 --also 1:19 --also 2:81 --sizes small \
        --seconds repeat=150 --out "$OUT" > "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py timed --every 25 --deadline-s 90 --out "$OUT" >> "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py share --share-problems 5 --deadline-s 40 --out "$OUT" >> "$OUT/sweep.log" 2>&1
    ;;
4)  # the rest of 2, with a regression slice of every level
    python3 benchmarks/gpu_sweep.py untimed,repeat --every 10 --sizes kernelbench --seconds untimed=70 --seconds repeat=200 \
        --deadline-s "$(( $(left) - 170 ))" --out "$OUT" > "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py timed --every 20 --also 3:26 --deadline-s "$(( $(left) - 60 ))" --out "$OUT" \
        >> "$OUT/sweep.log" 2>&1
    python3 benchmarks/gpu_sweep.py share --share-problems 5 --deadline-s 50 --out "$OUT" >> "$OUT/sweep.log" 2>&1
    ;;
esac
grep -E "deadline|Traceback|Error" "$OUT/sweep.log" | tail -5
python3 benchmarks/sweep_table.py "$OUT" | tee "$OUT/tables.md"
echo "left in /dev/shm: $(ls /dev/shm | grep -c kernelsearch); took $(( $(date +%s) - began )) s"
