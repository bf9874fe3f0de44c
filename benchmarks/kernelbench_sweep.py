"""Verify KernelBench problems at their own sizes on the GPU: a pass-through candidate for every problem (the
reference's own module as `ModelNew`, its outputs copied by a one-line Triton kernel: it must come back
`correct`, its PyTorch ops listed), with and without timing; or real kernels verified twice with timing, to
measure how far a speedup moves between two verifications of the same kernel.

    python benchmarks/kernelbench_sweep.py --kernelbench-dir kb --levels 1 --modes untimed,timed --out sweep.jsonl
    python benchmarks/kernelbench_sweep.py --kernelbench-dir kb --kernels benchmarks/kernels --repeat 2 --out rep.jsonl

Results are appended one JSON line per verification; entries already in --out are skipped, so a sweep cut
short (--deadline-s, or a device call's time limit) continues where it stopped."""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kernelsearch.problem import load_problem  # noqa: E402
from kernelsearch.verify import PoolConfig, WorkerPool, make_request  # noqa: E402

COPY_KERNEL = '''
import triton
import triton.language as tl


@triton.jit
def _ks_copy(src, dst, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(dst + offsets, tl.load(src + offsets, mask=mask), mask=mask)


def _ks_copied(x):
    if not isinstance(x, torch.Tensor):
        return x
    src = x.contiguous()
    out = torch.empty_like(src)
    if src.numel():
        flat_src, flat_out = (src.view(torch.uint8), out.view(torch.uint8)) if src.dtype == torch.bool else (src, out)
        _ks_copy[(triton.cdiv(src.numel(), 1024),)](flat_src, flat_out, src.numel(), BLOCK=1024)
    return out


class ModelNew(ModelReference):
    def forward(self, *args):
        out = super().forward(*args)
        return tuple(_ks_copied(o) for o in out) if isinstance(out, (tuple, list)) else _ks_copied(out)
'''


def passthrough_candidate(problem_source: str) -> str:
    """The problem's own module renamed, with ModelNew = the reference plus a Triton copy of its outputs."""
    renamed = re.sub(r"\bModel\b", "ModelReference", problem_source)
    return renamed + "\n" + COPY_KERNEL


def problem_files(root: Path, levels: list[int], ids: set[int] | None) -> list[tuple[int, Path]]:
    found = []
    for level in levels:
        for path in sorted((root / f"level{level}").glob("*.py"), key=lambda p: int(p.name.split("_")[0])):
            if ids is None or int(path.name.split("_")[0]) in ids:
                found.append((level, path))
    return found


def parse_ids(text: str | None) -> set[int] | None:
    if not text:
        return None
    ids = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        ids.update(range(int(lo), int(hi or lo) + 1))
    return ids


def record(verdict, **fields) -> dict:
    t = verdict.timing or {}
    row = {**fields, "status": verdict.status, "phase": verdict.phase, "elapsed_s": verdict.elapsed_s,
           "message": verdict.message[:400], "memory": getattr(verdict, "memory", ""),
           "pytorch_ops": len(verdict.pytorch_ops), "step_s": verdict.step_s}
    if "candidate" in t:
        row["candidate_ms"] = t["candidate"]["median_ms"]
        row["candidate_host_ms"] = t["candidate"].get("host_ms")
        for base in ("eager", "compile"):
            if isinstance(t.get(base), dict):
                row[f"{base}_ms"] = t[base]["median_ms"]
                row[f"speedup_vs_{base}"] = t.get(f"speedup_vs_{base}")
                row[f"speedup_vs_{base}_ci"] = t.get(f"speedup_vs_{base}_ci")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernelbench-dir", default="../shared/kernelbench", help="holds level1/ level2/ level3/")
    ap.add_argument("--levels", default="1", help="comma-separated levels (default 1)")
    ap.add_argument("--problems", help="ids, e.g. 1-20,37 (default all)")
    ap.add_argument("--modes", default="untimed,timed", help="untimed, timed or both (default both)")
    ap.add_argument("--kernels", help="a directory of real candidates named after their problem files (level 1)")
    ap.add_argument("--repeat", type=int, default=1, help="verifications of each kernel (default 1)")
    ap.add_argument("--deadline-s", type=float, default=540.0, help="start no new verification after this")
    ap.add_argument("--out", required=True, help="JSON lines, appended; entries already there are skipped")
    args = ap.parse_args()

    began = time.monotonic()
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {(r["level"], r["problem"], r["mode"], r.get("pass", 0)) for r in map(json.loads, out.read_text().splitlines())}
    root = Path(args.kernelbench_dir)
    jobs = []
    if args.kernels:
        for kernel in sorted(Path(args.kernels).glob("*.py")):
            for p in range(args.repeat):
                jobs.append((1, root / "level1" / kernel.name, "kernel", p, kernel.read_text()))
    else:
        for level, path in problem_files(root, [int(x) for x in args.levels.split(",")], parse_ids(args.problems)):
            for mode in args.modes.split(","):
                jobs.append((level, path, mode, 0, None))
    with WorkerPool(PoolConfig(device="cuda")) as pool, out.open("a") as sink:
        print(f"device: {pool.info.get('device_name')}; {len(jobs)} verifications", flush=True)
        for level, path, mode, p, candidate in jobs:
            if (level, path.stem, mode, p) in done:
                continue
            if time.monotonic() - began > args.deadline_s:
                print("deadline reached: stopping here (run again to continue)", flush=True)
                break
            problem = load_problem(path)
            source = candidate or passthrough_candidate(problem.source)
            started = time.monotonic()
            verdict = pool.verify(make_request(problem, source, f"{path.stem}_{mode}", timing=mode != "untimed"))
            row = record(verdict, level=level, problem=path.stem, mode=mode, wall_s=round(time.monotonic() - started, 2))
            row["pass"] = p
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            speed = f" {row['speedup_vs_eager']:.3g}x eager" if row.get("speedup_vs_eager") else ""
            print(f"L{level} {path.stem[:40]:40} {mode:8} {verdict.status:14} {row['wall_s']:7.1f}s{speed}  "
                  f"{'' if verdict.ok else verdict.message[:120]}", flush=True)
    summarize(out)


def summarize(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for mode in sorted({r["mode"] for r in rows}):
        group = [r for r in rows if r["mode"] == mode]
        walls = [r["wall_s"] for r in group]
        statuses: dict[str, int] = {}
        for r in group:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        ooms = sum("out of memory" in r["message"].lower() for r in group)
        print(f"{mode}: {len(group)} verifications, {statuses}; wall median {statistics.median(walls):.2f}s, "
              f"max {max(walls):.1f}s, over 60s: {sum(w > 60 for w in walls)}; messages naming memory: {ooms}")


if __name__ == "__main__":
    main()
