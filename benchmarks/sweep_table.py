"""Markdown tables from kernelbench_sweep.py results: per problem (untimed and timed verification), and the
speedup of each real kernel in two verifications.

    python benchmarks/sweep_table.py DIR      # DIR holds l{1,2,3}_{untimed,timed}.jsonl and repeat_run{1,2}.jsonl"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def per_problem(root: Path, level: int) -> str:
    untimed = {r["problem"]: r for r in rows(root / f"l{level}_untimed.jsonl")}
    timed = {r["problem"]: r for r in rows(root / f"l{level}_timed.jsonl")}
    lines = [f"| L{level} problem | untimed | s | timed | s | vs eager [95 % interval] | vs compile | memory plan |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in sorted(set(untimed) | set(timed), key=lambda n: int(n.split("_")[0])):
        u, t = untimed.get(name, {}), timed.get(name, {})
        ci = t.get("speedup_vs_eager_ci")
        eager = f"{t['speedup_vs_eager']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if t.get("speedup_vs_eager") else ""
        compile_ = f"{t['speedup_vs_compile']:.3g}" if t.get("speedup_vs_compile") else ""
        memory = (u or t).get("memory", "").split(";")[0]
        lines.append(f"| {name} | {u.get('status', '—')} | {u.get('wall_s', '')} | {t.get('status', '—')} | "
                     f"{t.get('wall_s', '')} | {eager} | {compile_} | {memory} |")
    return "\n".join(lines)


def summary(root: Path) -> str:
    lines = ["| set | verifications | statuses | wall median s | max s | over 60 s | messages naming memory |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for level in (1, 2, 3):
        for mode in ("untimed", "timed"):
            group = rows(root / f"l{level}_{mode}.jsonl")
            if not group:
                continue
            walls = [r["wall_s"] for r in group]
            statuses: dict[str, int] = {}
            for r in group:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            memory = sum("out of memory" in r["message"].lower() for r in group)
            lines.append(f"| L{level} {mode} | {len(group)} | {statuses} | {statistics.median(walls):.2f} | "
                         f"{max(walls):.1f} | {sum(w > 60 for w in walls)} | {memory} |")
    return "\n".join(lines)


def repeatability(root: Path) -> str:
    lines = ["| kernel | candidate ms | run 1: pass 1, pass 2 | run 2: pass 1, pass 2 | largest spread |",
             "| --- | --- | --- | --- | --- |"]
    runs = [rows(root / "repeat_run1.jsonl"), rows(root / "repeat_run2.jsonl")]
    for name in sorted({r["problem"] for run in runs for r in run}, key=lambda n: int(n.split("_")[0])):
        cells, speeds, ms = [], [], None
        for run in runs:
            values = [r.get("speedup_vs_eager") for r in run if r["problem"] == name]
            ms = ms or next((r.get("candidate_ms") for r in run if r["problem"] == name and r.get("candidate_ms")), None)
            cells.append(", ".join(f"{v:.3g}x" if v else "—" for v in values))
            speeds += [[v for v in values if v]]
        within = [abs(a - b) / min(a, b) for pair in speeds if len(pair) == 2 for a, b in [pair]]
        spread = f"{100 * max(within):.1f} %" if within else "—"
        lines.append(f"| {name} | {ms:.4g} | {cells[0]} | {cells[1]} | {spread} |" if ms else
                     f"| {name} | — | {cells[0]} | {cells[1]} | {spread} |")
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1])
    print(summary(root), "", repeatability(root), sep="\n")
    for level in (1, 2, 3):
        print("", per_problem(root, level), sep="\n")
