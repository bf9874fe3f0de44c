"""Soak the verifier: N candidates in a row through one WorkerPool on the CPU (Triton's interpreter), mixing every
way a candidate can end, and check that each verdict is the expected one and that nothing leaks.

    python benchmarks/soak.py --n 1000 --out soak.json

Per kind: count, mismatches, seconds per verdict. Overall: verdicts per second, worker restarts, and the pool
process's RSS, open file descriptors and threads sampled every 50 jobs (they must stay flat: first, last, max);
after close, no worker process may be left. Exits 1 on any mismatch or leftover worker."""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS, CANDIDATES = ROOT / "tests" / "problems", ROOT / "tests" / "candidates"
OWN = ROOT / "benchmarks" / "soak_candidates"  # kinds the tests have no candidate for
WORKER_MODULE = b"kernelsearch.verify.worker"
SAMPLE_EVERY = 50


@dataclass
class Kind:
    name: str
    problem: str
    candidate: Path
    status: str  # the verdict it must get
    says: str = ""  # and a fragment of its message, where the status alone could come from another cause
    weight: int = 1  # per cycle of the mix


# The test problems at their own sizes are tiny (a few thousand elements): a correct verdict takes ~0.3 s.
KINDS = [
    Kind("correct add_relu", "elementwise_add_relu", CANDIDATES / "add_relu_triton.py", "correct", weight=2),
    Kind("correct softmax", "softmax", CANDIDATES / "softmax_triton.py", "correct", weight=2),
    Kind("correct matmul", "matmul", CANDIDATES / "matmul_triton.py", "correct", weight=2),
    Kind("wrong tail", "elementwise_add_relu", CANDIDATES / "add_relu_wrong_tail.py", "incorrect"),
    Kind("wrong scale", "matmul", CANDIDATES / "matmul_wrong_scale.py", "incorrect"),
    Kind("raises", "elementwise_add_relu", CANDIDATES / "crash_raises.py", "runtime_error", "kernel gave up"),
    Kind("segfault", "elementwise_add_relu", CANDIDATES / "out_of_bounds.py", "runtime_error", "SIGSEGV"),
    Kind("hang", "elementwise_add_relu", CANDIDATES / "hang.py", "timeout"),
    Kind("out of memory", "elementwise_add_relu", OWN / "allocates_too_much.py", "runtime_error",
         "can't allocate memory"),
    Kind("syntax error", "elementwise_add_relu", CANDIDATES / "syntax_error.py", "compile_error"),
    Kind("triton compile error", "elementwise_add_relu", CANDIDATES / "triton_compile_error.py", "compile_error",
         "power of 2"),
]


def mix(n: int, seed: int) -> list[Kind]:
    """Whole weighted cycles, each shuffled: every kind comes early and evenly, whatever n is."""
    rng, order = random.Random(seed), []
    cycle = [kind for kind in KINDS for _ in range(kind.weight)]
    while len(order) < n:
        rng.shuffle(cycle)
        order.extend(cycle)
    return order[:n]


def sample() -> dict:
    """This process: resident memory (MiB), open file descriptors, threads."""
    rss_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return {"rss_mib": round(rss_kb / 1024, 1), "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count()}


def workers_in(root: Path) -> list[int]:
    """Worker processes whose working directory is under root, whoever their parent is now (orphans too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (WORKER_MODULE in Path(f"/proc/{entry}/cmdline").read_bytes()
                    and Path(os.readlink(f"/proc/{entry}/cwd")).is_relative_to(root)):
                found.append(int(entry))
        except OSError:
            continue
    return found


def soak(n: int, seed: int, compile_timeout: float, run_timeout: float, trials: int) -> dict:
    problems = {kind.problem: load_problem(PROBLEMS / f"{kind.problem}.py") for kind in KINDS}
    sources = {kind.name: kind.candidate.read_text() for kind in KINDS}
    root = Path(tempfile.mkdtemp(prefix="kernelsearch-soak-"))
    config = PoolConfig(device="cpu", compile_timeout_s=compile_timeout, run_timeout_s=run_timeout,
                        workdir=str(root))
    jobs, samples, mismatches, pids = [], [], [], set()
    began = time.monotonic()
    with WorkerPool(config) as pool:
        for i, kind in enumerate(mix(n, seed)):
            request = make_request(problems[kind.problem], sources[kind.name], kind.candidate.stem, trials=trials,
                                   timing=False, seed=seed + i)
            t = time.monotonic()
            verdict = pool.verify(request)
            wall = time.monotonic() - t
            pids.add(pool.info.get("pid"))
            ok = verdict.status == kind.status and kind.says in verdict.message
            jobs.append({"kind": kind.name, "status": verdict.status, "ok": ok, "wall_s": round(wall, 3)})
            if not ok:
                line = verdict.message.splitlines()[0][:160] if verdict.message else ""
                mismatches.append({"job": i, "kind": kind.name, "expected": kind.status, "got": verdict.status,
                                   "message": line})
                print(f"MISMATCH job {i} {kind.name}: expected {kind.status}"
                      f"{f' saying {kind.says!r}' if kind.says else ''}, got {verdict.status}: {line}", flush=True)
            if i % SAMPLE_EVERY == 0 or i == n - 1:  # after the job: from the first on, a worker has started
                samples.append({"after_job": i + 1, **sample()})
        elapsed = time.monotonic() - began
    time.sleep(0.5)  # killed processes take a moment to leave /proc
    leftover = workers_in(root)
    shutil.rmtree(root, ignore_errors=True)
    return {"n": n, "seed": seed, "compile_timeout_s": compile_timeout, "run_timeout_s": run_timeout,
            "trials": trials, "recycle_after": config.recycle_after, "elapsed_s": round(elapsed, 1),
            "verdicts_per_s": round(n / elapsed, 3), "worker_processes": len(pids), "restarts": len(pids) - 1,
            "samples": samples, "mismatches": mismatches, "leftover_workers": leftover,
            "kinds": per_kind(jobs), "jobs": jobs}


def per_kind(jobs: list[dict]) -> dict:
    kinds: dict[str, dict] = {}
    for kind in KINDS:
        mine = [j for j in jobs if j["kind"] == kind.name]
        walls = [j["wall_s"] for j in mine]
        kinds[kind.name] = {"expected": kind.status, "n": len(mine), "mismatches": sum(not j["ok"] for j in mine),
                            "mean_s": round(sum(walls) / len(walls), 3) if walls else None,
                            "max_s": max(walls) if walls else None}
    return kinds


def report(result: dict) -> str:
    lines = [f"{'kind':22s} {'expected':14s} {'n':>5s} {'wrong':>5s} {'mean s':>7s} {'max s':>7s}"]
    for name, k in result["kinds"].items():
        if k["n"]:
            lines.append(f"{name:22s} {k['expected']:14s} {k['n']:5d} {k['mismatches']:5d} {k['mean_s']:7.2f} "
                         f"{k['max_s']:7.2f}")
    samples = result["samples"]
    first, last = samples[0], samples[-1]
    lines += [
        f"{result['n']} verdicts in {result['elapsed_s']} s: {result['verdicts_per_s']} per second; "
        f"{len(result['mismatches'])} mismatches",
        f"worker restarts: {result['restarts']} (hangs, crashes, recycling every {result['recycle_after']} jobs)",
        f"pool process RSS MiB: first {first['rss_mib']}, last {last['rss_mib']}, "
        f"max {max(s['rss_mib'] for s in samples)} (sampled every {SAMPLE_EVERY} jobs)",
        f"open fds: first {first['fds']}, last {last['fds']}, max {max(s['fds'] for s in samples)}; "
        f"threads: first {first['threads']}, last {last['threads']}, max {max(s['threads'] for s in samples)}",
        f"worker processes left after close: {len(result['leftover_workers'])}"
        + (f" {result['leftover_workers']}" if result["leftover_workers"] else ""),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="candidates to verify (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="order of the mix and the trial seeds (default 0)")
    # A correct tiny candidate needs ~0.5 s per phase on a loaded 2-core machine; a hang costs one run limit.
    parser.add_argument("--compile-timeout", type=float, default=6.0, metavar="S", help="default 6")
    parser.add_argument("--run-timeout", type=float, default=4.0, metavar="S", help="default 4")
    parser.add_argument("--trials", type=int, default=5, help="per candidate (default 5, as solve uses)")
    parser.add_argument("--out", default="soak.json", help="JSON results (default soak.json)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    result = soak(args.n, args.seed, args.compile_timeout, args.run_timeout, args.trials)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"results: {args.out}")
    raise SystemExit(1 if result["mismatches"] or result["leftover_workers"] else 0)


if __name__ == "__main__":
    main()
