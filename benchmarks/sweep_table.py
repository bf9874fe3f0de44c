"""Markdown tables from benchmarks/gpu_sweep.py's results: each set's verdicts and times against issue #23's
targets, the repeat pairs' spread, the CUDA batch and the shared GPU.

    python benchmarks/sweep_table.py DIR      # DIR holds untimed.jsonl, timed.jsonl, repeat.jsonl, cuda.jsonl, ..."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

SMALL_MS = 0.1  # the repeat targets: within 5 % at >= 100 us, within 10 % at 10-100 us
TARGET = {"untimed": (1.5, 15.0), "timed": (5.0, 30.0)}  # median, slowest (seconds)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def job_s(row: dict) -> float:
    """A verification's own seconds in a warm worker: the job's time as the worker measured it (the wall from submit
    to verdict adds ~0.2 s of the pool's, and a worker's start where the pool recycled it), less the torch.compile
    baseline's first build (the targets except it) and the wait for a turn on the GPU."""
    steps = row.get("step_s") or {}
    return row.get("elapsed_s", row["wall_s"]) - steps.get("compile_baseline", 0.0) - steps.get("waiting_for_gpu", 0.0)


def counts(group: list[dict]) -> dict:
    found: dict[str, int] = {}
    for r in group:
        found[r["status"]] = found.get(r["status"], 0) + 1
    return found


def sets_table(root: Path) -> str:
    lines = ["| set | verifications | statuses | median s (job; wall) | slowest s (problem) | target: median, slowest | "
             "compile baseline s (median, max) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("untimed", "timed"):
        group = rows(root / f"{name}.jsonl")
        if not group:
            continue
        times = [job_s(r) for r in group]
        slowest = max(group, key=job_s)
        builds = [r["step_s"].get("compile_baseline") for r in group if (r.get("step_s") or {}).get("compile_baseline")]
        build = f"{statistics.median(builds):.1f}, {max(builds):.1f}" if builds else "—"
        walls = statistics.median(r["wall_s"] for r in group)
        lines.append(f"| {name} | {len(group)} | {counts(group)} | {statistics.median(times):.2f}; {walls:.2f} | "
                     f"{job_s(slowest):.1f} ({slowest['problem']}) | {TARGET[name][0]}, {TARGET[name][1]} | {build} |")
    return "\n".join(lines)


def slowest_table(root: Path, name: str, n: int = 10) -> str:
    group = sorted(rows(root / f"{name}.jsonl"), key=job_s, reverse=True)[:n]
    lines = [f"| {name}: slowest | status | s | where the time went (step_s) |", "| --- | --- | --- | --- |"]
    for r in group:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in list((r.get("step_s") or {}).items())[:5])
        lines.append(f"| L{r['level']} {r['problem']} | {r['status']} | {job_s(r):.1f} | {steps} |")
    return "\n".join(lines)


def repeat_table(root: Path) -> str:
    lines = ["| kernel | size | candidate ms (pass 1, 2) | candidate spread | vs eager (pass 1, 2) | speedup spread | "
             "within target | host ms (launch-bound) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    group = rows(root / "repeat.jsonl")
    met = {"large": [0, 0], "small": [0, 0]}
    for key in sorted({(r["problem"], r["size"]) for r in group}, key=lambda k: (k[1], int(k[0].split("_")[0]))):
        pair = sorted((r for r in group if (r["problem"], r["size"]) == key), key=lambda r: r["pass"])
        ms = [r.get("candidate_ms") for r in pair]
        speed = [r.get("speedup_vs_eager") for r in pair]
        if len(pair) < 2 or None in ms or None in speed:
            lines.append(f"| {key[0]} | {key[1]} | {', '.join(r['status'] for r in pair)} | | | | | |")
            continue
        cls = "large" if min(ms) >= SMALL_MS else "small"
        limit = 0.05 if cls == "large" else 0.10
        spread_ms, spread_speed = abs(ms[0] - ms[1]) / min(ms), abs(speed[0] - speed[1]) / min(speed)
        ok = spread_ms <= limit and spread_speed <= limit
        met[cls][0] += ok
        met[cls][1] += 1
        host = pair[0].get("candidate_host_ms")
        launch = f"{host:.3g}{' (yes)' if host and host > ms[0] else ''}" if host else "—"
        lines.append(f"| {key[0]} | {key[1]} | {ms[0]:.4g}, {ms[1]:.4g} | {100 * spread_ms:.1f} % | {speed[0]:.3g}x, "
                     f"{speed[1]:.3g}x | {100 * spread_speed:.1f} % | {'yes' if ok else 'NO'} ({limit:.0%}) | "
                     f"{launch} |")
    lines.append("")
    lines.append(f"Within target: {met['large'][0]} of {met['large'][1]} kernels at >= 100 us (5 %), "
                 f"{met['small'][0]} of {met['small'][1]} at 10-100 us (10 %).")
    return "\n".join(lines)


def cuda_table(root: Path) -> str:
    group = rows(root / "cuda.jsonl")
    batch = next((r for r in group if r["problem"] == "batch"), None)
    if batch is None:
        return ""
    verdicts = [r for r in group if r["problem"] != "batch"]
    return (f"CUDA C++ batch: {len(verdicts)} candidates submitted at once, {counts(verdicts)}; wall "
            f"{batch['wall_s']:.1f} s, slowest build {batch['slowest_build_s']} s (target: slowest build + 10 s); "
            f"builds (s): {batch['builds_s']}")


def share_table(root: Path) -> str:
    group = rows(root / "share.jsonl")
    if not group:
        return ""
    lines = ["| workers on the GPU | jobs | statuses | wall s (from every worker up) | their start s |",
             "| --- | --- | --- | --- | --- |"]
    for r in sorted(group, key=lambda r: r["size"]):
        start = f"{r['start_s']:.1f}" if "start_s" in r else "in the wall"  # rows before 2026-12-07c timed it in
        lines.append(f"| {r['size']} | {r['jobs']} | {r['message']} | {r['wall_s']:.1f} | {start} |")
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for part in (sets_table(root), slowest_table(root, "untimed"), slowest_table(root, "timed"), repeat_table(root),
                 cuda_table(root), share_table(root)):
        if part:
            print(part, end="\n\n")
