"""Verdicts per minute through the local pool and through a RayPool on a local Ray cluster, same jobs, same machine.

    python benchmarks/ray_throughput.py --workers 2 --n 60 --rounds 2 --out ray-throughput.json

Each round runs the same N jobs (a fixed mix of correct, incorrect and failing candidates over three test problems,
untimed, CPU interpreter) through WorkerPool(cpu_workers=W), through RayPool with W actors (one CPU worker each),
and through RayPool with placement off (steal_after_s=0: first come, first served, as the local queue), in turn,
so that a busy machine weighs on all alike; the third separates Ray's own cost from what placement saves. Startup
(workers warm, actors placed) is timed apart from the jobs. Exits 1 if any verdict's status differs."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS, CANDIDATES = ROOT / "tests" / "problems", ROOT / "tests" / "candidates"
MIX = [  # problem, candidate: one cycle of the jobs
    ("elementwise_add_relu", "add_relu_triton"), ("softmax", "softmax_triton"), ("matmul", "matmul_triton"),
    ("elementwise_add_relu", "add_relu_wrong_tail"), ("matmul", "matmul_wrong_scale"),
    ("softmax", "syntax_error"),
]


def jobs(n: int) -> list:
    loaded = {p: load_problem(PROBLEMS / f"{p}.py") for p, _ in MIX}
    return [make_request(loaded[p], (CANDIDATES / f"{c}.py").read_text(), c, timing=False)
            for p, c in (MIX[i % len(MIX)] for i in range(n))]


def run(make_pool, requests: list) -> dict:
    began = time.monotonic()
    with make_pool() as pool:
        started = time.monotonic()
        pool.verify(requests[0])  # the first answer: the workers are warm (a RayPool's actors' workers too)
        warm = time.monotonic()
        statuses = [f.result().status for f in [pool.submit(r) for r in requests]]
        done = time.monotonic()
        where = pool.record() if hasattr(pool, "record") else {"backend": "local", "workers": len(pool.workers)}
    return {"startup_s": round(warm - began, 2), "pool_start_s": round(started - began, 2),
            "jobs_s": round(done - warm, 2), "verdicts_per_min": round(60 * len(requests) / (done - warm), 1),
            "statuses": statuses, "where": where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="local workers, and Ray actors")
    parser.add_argument("--n", type=int, default=60, help="jobs per backend per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="ray-throughput.json")
    args = parser.parse_args()

    import ray

    import kernelsearch
    from kernelsearch.scale.cluster import connect
    from kernelsearch.scale.ray_pool import RayPool

    config = PoolConfig(device="cpu", cpu_workers=args.workers, compile_timeout_s=60, run_timeout_s=30)
    requests = jobs(args.n)
    began = time.monotonic()
    connect("local", num_cpus=args.workers)
    cluster_s = round(time.monotonic() - began, 2)
    rounds = []
    for i in range(args.rounds):
        local = run(lambda: WorkerPool(config), requests)
        remote = run(lambda: RayPool(config, "local", actors=args.workers), requests)
        fifo = run(lambda: RayPool(config, "local", actors=args.workers, steal_after_s=0), requests)
        rounds.append({"local": local, "ray": remote, "ray_placement_off": fifo})
        print(f"round {i + 1}: " + ", ".join(f"{name} {r['verdicts_per_min']}/min (start {r['startup_s']} s)"
                                             for name, r in rounds[-1].items()), flush=True)
    same = all(r["local"]["statuses"] == v["statuses"] for r in rounds for v in r.values())
    import torch
    import triton
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()}, {platform.processor() or '?'}",
              "cpus": __import__("os").cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
              "torch": torch.__version__, "triton": triton.__version__, "kernelsearch": kernelsearch.__version__,
              "workers": args.workers, "n": args.n, "cluster_start_s": cluster_s, "same_statuses": same,
              "rounds": rounds}
    result["median_verdicts_per_min"] = {name: statistics.median(r[name]["verdicts_per_min"] for r in rounds)
                                         for name in rounds[0]}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"medians per minute: {result['median_verdicts_per_min']}")
    print(f"local Ray cluster started in {cluster_s} s; same statuses on both backends: {same}; {args.out}")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
