"""The verifier's own cost per candidate on a warm worker, and sample verdicts at realistic sizes (GPU)."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS, CANDIDATES = ROOT / "tests" / "problems", ROOT / "tests" / "candidates"
SAMPLES = [  # problem, candidate, sizes
    ("elementwise_add_relu", "add_relu_triton", {"batch_size": "4096", "dim": "16384"}),
    ("softmax", "softmax_triton", {"batch_size": "4096", "dim": "8192"}),
    ("matmul", "matmul_triton", {"M": "2048", "K": "2048", "N": "2048"}),
    ("conv_relu_bias", "conv_relu_bias_partial", {"batch_size": "64", "height": "128", "width": "128"}),
    ("cross_entropy", "cross_entropy_triton", {"batch_size": "4096", "num_classes": "1000"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict = {}
    began = time.perf_counter()
    with WorkerPool(PoolConfig(device=args.device)) as pool:
        small = load_problem(PROBLEMS / "elementwise_add_relu.py")
        source = (CANDIDATES / "add_relu_triton.py").read_text()
        first = pool.verify(make_request(small, source, timing=False))
        results["cold_start_s"] = time.perf_counter() - began  # spawn + import torch + CUDA context + 1st job
        results["device"] = first.device
        for timing in (False, True):
            pool.verify(make_request(small, source, timing=timing))  # warm: Triton cache, baselines measured
            walls, inside = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                v = pool.verify(make_request(small, source, timing=timing))
                walls.append(time.perf_counter() - t)
                inside.append(v.elapsed_s)
                assert v.status == "correct", v.message
            results[f"warm_{'timed' if timing else 'untimed'}"] = {
                "median_wall_s": statistics.median(walls), "median_worker_s": statistics.median(inside),
                "repeats": args.repeats}
        samples = []
        for problem, candidate, sizes in SAMPLES:
            loaded = load_problem(PROBLEMS / f"{problem}.py", {k: v for k, v in sizes.items()
                                                              if k in load_problem(PROBLEMS / f"{problem}.py").constants})
            t = time.perf_counter()
            v = pool.verify(make_request(loaded, (CANDIDATES / f"{candidate}.py").read_text(), candidate))
            row = {"problem": problem, "sizes": {k: new for k, (old, new) in loaded.overrides.items()},
                   "status": v.status, "message": v.message[:300], "wall_s": round(time.perf_counter() - t, 2)}
            if v.timing:
                row.update(candidate_ms=v.timing["candidate"]["median_ms"], eager_ms=v.timing["eager"]["median_ms"],
                           compile_ms=(v.timing["compile"]["median_ms"] if isinstance(v.timing.get("compile"), dict)
                                       else None),
                           speedup_vs_eager=v.timing.get("speedup_vs_eager"),
                           speedup_vs_compile=v.timing.get("speedup_vs_compile"))
            row["warnings"] = v.warnings
            samples.append(row)
        results["samples"] = samples
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\ncold start {results['cold_start_s']:.1f}s; warm untimed {results['warm_untimed']['median_wall_s']:.3f}s,"
          f" warm timed {results['warm_timed']['median_wall_s']:.3f}s per candidate")
    for r in samples:
        print(f"{r['problem']:22s} {r['status']:10s} cand {r.get('candidate_ms') or 0:8.4f} ms  eager "
              f"{r.get('eager_ms') or 0:8.4f} ms  compile {r.get('compile_ms') or 0:8.4f} ms  "
              f"x{r.get('speedup_vs_eager') or 0:.2f} eager  x{r.get('speedup_vs_compile') or 0:.2f} compile")


if __name__ == "__main__":
    main()
