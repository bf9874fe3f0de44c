"""The verifier's GPU regression sweep (issue #23), one set at a time, in a fixed order; each set appends JSON lines
to its own file under --out (a set cut short continues where it stopped) and benchmarks/sweep_table.py turns them
into the tables of benchmarks/RESULTS.md. benchmarks/gpu_sweep.sh runs the sets in two device calls.

    untimed     every Level 1-3 problem, a pass-through candidate, untimed (one warm worker)
    timed       the same, timed (with --every N, every N-th problem of each level)
    repeat      the Triton kernels of benchmarks/kernels, each verified twice in a row, timed: at KernelBench's sizes
                (>= 100 us) and at small sizes (SMALL below: 10-100 us)
    cuda        the eight CUDA C++ candidates of benchmarks/kernels_cuda submitted at once (built off the GPU)
    share       the same jobs through one worker, then two on the GPU: ten problems, each verified four times
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kernelbench_sweep import parse_ids, passthrough_candidate, problem_files, record  # noqa: E402
from kernelsearch.problem import load_problem  # noqa: E402
from kernelsearch.verify import PoolConfig, WorkerPool, make_request  # noqa: E402

HERE = Path(__file__).resolve().parent
# Sizes at which the kernels of benchmarks/kernels take 10-100 us on an H100 (estimated from their bytes and FLOPs
# at ~3 TB/s; the repeat set records what they took).
SMALL = {
    "100_HingeLoss": {"batch_size": "2048", "input_shape": "(2048,)"},
    "12_Matmul_with_diagonal_matrices_": {"M": "2048", "N": "2048"},
    "19_ReLU": {"batch_size": "256", "dim": "65536"},
    "1_Square_matrix_multiplication_": {"N": "1024"},
    "22_Tanh": {"batch_size": "256", "dim": "65536"},
    "23_Softmax": {"batch_size": "256", "dim": "65536"},
    "36_RMSNorm_": {"batch_size": "2", "dim1": "256", "dim2": "256"},
    "38_L1Norm_": {"batch_size": "256", "dim": "65535"},
    "40_LayerNorm": {"batch_size": "2"},
    "47_Sum_reduction_over_a_dimension": {"batch_size": "2"},
    "95_CrossEntropyLoss": {"batch_size": "2048"},
    "98_KLDivLoss": {"batch_size": "2048", "input_shape": "(2048,)"},
}
# The CUDA batch at sizes that verify in a second or two: the build is what the set measures.
CUDA_SIZES = {"5_Matrix_scalar_multiplication": {"M": "1024", "N": "1024"}}
CUDA_DEFAULT_SIZES = {"batch_size": "16", "dim": "16384"}


class Sink:
    """One set's JSON lines: rows already there are skipped, new ones appended as they come."""

    def __init__(self, path: Path, deadline: float):
        self.path, self.deadline = path, deadline
        self.done = {_key(json.loads(line)) for line in path.read_text().splitlines()} if path.exists() else set()

    def wants(self, **key) -> bool:
        if time.monotonic() > self.deadline:
            print("deadline reached: stopping here (run again to continue)", flush=True)
            return False
        return _key(key) not in self.done

    def add(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        speed = f" {row['speedup_vs_eager']:.3g}x eager" if row.get("speedup_vs_eager") else ""
        print(f"{row.get('set')} {row['problem'][:40]:40} {row['status']:14} {row['wall_s']:7.1f}s{speed}  "
              f"{'' if row['status'] == 'correct' else row['message'][:120]}", flush=True)


def _key(row: dict) -> tuple:
    return row.get("level"), row["problem"], row.get("mode"), row.get("pass", 0), row.get("size", "")


def verify_one(pool, path: Path, source: str, sink: Sink, overrides: dict | None = None, **fields) -> None:
    problem = load_problem(path, overrides)
    began = time.monotonic()
    verdict = pool.verify(make_request(problem, source, f"{path.stem}_{fields.get('mode')}",
                                       timing=fields.get("mode") != "untimed"))
    sink.add(record(verdict, problem=path.stem, wall_s=round(time.monotonic() - began, 2), **fields))


def passthrough(pool, root: Path, sink: Sink, chosen: list[tuple[int, Path]], mode: str) -> None:
    for level, path in chosen:
        if sink.wants(level=level, problem=path.stem, mode=mode):
            verify_one(pool, path, passthrough_candidate(path.read_text()), sink, level=level, mode=mode, set=mode)


def chosen_problems(root: Path, levels: list[int], ids: set[int] | None, every: int, also: list[str]) -> list:
    """Every `every`-th problem of each level (of `ids`), then those `also` names (LEVEL:IDS) that are not in yet."""
    chosen = [found for level in levels for k, found in enumerate(problem_files(root, [level], ids)) if k % every == 0]
    for extra in also:
        level, _, numbers = extra.partition(":")
        chosen += [found for found in problem_files(root, [int(level)], parse_ids(numbers)) if found not in chosen]
    return chosen


def repeat(pool, root: Path, sink: Sink, sizes: list[str]) -> None:
    for size, table in [(size, {"kernelbench": {}, "small": SMALL}[size]) for size in sizes]:
        for kernel in sorted((HERE / "kernels").glob("*.py")):
            for p in range(2):
                if sink.wants(level=1, problem=kernel.stem, mode="timed", size=size, **{"pass": p}):
                    verify_one(pool, root / "level1" / kernel.name, kernel.read_text(), sink,
                               table.get(kernel.stem), level=1, mode="timed", size=size, set="repeat", **{"pass": p})


def cuda_batch(pool, root: Path, sink: Sink) -> None:
    """All eight submitted at once: the wall from the first submit to the last verdict, and each one's build."""
    kernels = sorted((HERE / "kernels_cuda").glob("*.py"))
    if not sink.wants(level=1, problem="batch", mode="untimed"):
        return
    began = time.monotonic()
    futures = {}
    for kernel in kernels:
        problem = load_problem(root / "level1" / kernel.name, CUDA_SIZES.get(kernel.stem, CUDA_DEFAULT_SIZES))
        futures[kernel.stem] = pool.submit(make_request(problem, kernel.read_text(), kernel.stem, timing=False))
    wait(futures.values())
    wall = round(time.monotonic() - began, 2)
    builds = {}
    for name, future in futures.items():
        verdict = future.result()
        builds[name] = verdict.step_s.get("build")
        sink.add(record(verdict, level=1, problem=name, mode="untimed", set="cuda", wall_s=wall))
    slowest = max((b for b in builds.values() if b), default=None)
    sink.add({"level": 1, "problem": "batch", "mode": "untimed", "set": "cuda", "status": "correct", "wall_s": wall,
              "message": "", "builds_s": builds, "slowest_build_s": slowest})
    print(f"cuda batch: {len(kernels)} candidates in {wall:.1f} s, slowest build {slowest} s", flush=True)


def share(root: Path, sink: Sink, workers: int, problems: int = 10) -> None:
    """The first Level 2 problems, each verified four times (as a search verifies its problem again and again)."""
    paths = [path for _, path in problem_files(root, [2], set(range(1, problems + 1)))]
    if not sink.wants(level=2, problem="share", mode="untimed", size=str(workers)):
        return
    with WorkerPool(PoolConfig(device="cuda", workers_per_gpu=workers)) as pool:
        # timed from when every worker is up: two workers and their keepers starting at once took 6 s more than
        # one (H100, 2026-12-07: 50.4 s against 44.4 s for 20 jobs, starts included), which says nothing of
        # throughput
        started = time.monotonic()
        while not all(w.info for w in pool.workers) and time.monotonic() - started < 120:
            time.sleep(0.2)
        began = time.monotonic()
        futures = [(path, pool.submit(make_request(load_problem(path), passthrough_candidate(path.read_text()),
                                                   path.stem, timing=False))) for path in paths for _ in range(4)]
        statuses: dict[str, int] = {}
        for _, future in futures:
            status = future.result().status
            statuses[status] = statuses.get(status, 0) + 1
        wall = round(time.monotonic() - began, 2)
    sink.add({"level": 2, "problem": "share", "mode": "untimed", "size": str(workers), "set": "share",
              "status": "correct" if set(statuses) == {"correct"} else str(statuses), "wall_s": wall,
              "start_s": round(began - started, 2),
              "message": json.dumps(statuses), "jobs": len(futures)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", help="comma-separated, run in this order: untimed, timed, repeat, cuda, share")
    ap.add_argument("--kernelbench-dir", default="kb", help="holds level1/ level2/ level3/")
    ap.add_argument("--levels", default="1,2,3")
    ap.add_argument("--problems", help="ids, e.g. 1-20,37 (default all)")
    ap.add_argument("--every", type=int, default=1, help="untimed, timed: every N-th problem of each level")
    ap.add_argument("--also", action="append", default=[], metavar="LEVEL:IDS",
                    help="untimed, timed: these problems too, e.g. 1:5,19 (repeatable)")
    ap.add_argument("--sizes", default="kernelbench,small", help="repeat: kernelbench, small or both, in that order")
    ap.add_argument("--share-problems", type=int, default=10, help="share: Level 2 problems 1..N, four jobs each")
    ap.add_argument("--seconds", action="append", default=[], metavar="SET=S",
                    help="start no new verification of SET after S seconds of it (default: --deadline-s)")
    ap.add_argument("--deadline-s", type=float, default=520.0, help="start no new verification after this")
    ap.add_argument("--out", required=True, help="a directory: one JSON-lines file per set")
    args = ap.parse_args()

    began = time.monotonic()
    out, root = Path(args.out), Path(args.kernelbench_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = chosen_problems(root, [int(x) for x in args.levels.split(",")], parse_ids(args.problems), args.every,
                             args.also)
    caps = {name: float(s) for name, _, s in (item.partition("=") for item in args.seconds)}

    def sink(name: str) -> Sink:
        deadline = min(began + args.deadline_s, time.monotonic() + caps.get(name, args.deadline_s))
        return Sink(out / f"{name}.jsonl", deadline)

    wanted = args.sets.split(",")
    if any(name != "share" for name in wanted):
        with WorkerPool(PoolConfig(device="cuda")) as pool:  # one warm worker for every set but share
            print(f"device: {pool.arch(180) and pool.info.get('device_name')}; {pool.info.get('containment')}",
                  flush=True)
            for name in wanted:
                if name in ("untimed", "timed"):
                    passthrough(pool, root, sink(name), chosen, name)
                elif name == "repeat":
                    repeat(pool, root, sink(name), args.sizes.split(","))
                elif name == "cuda":
                    cuda_batch(pool, root, sink(name))
    if "share" in wanted:
        shared = sink("share")
        for workers in (1, 2):
            share(root, shared, workers, args.share_problems)


if __name__ == "__main__":
    main()
