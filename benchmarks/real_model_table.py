"""Issue #26's tables from benchmarks/real_model_sample.sh's directory (laid out as a bench's): per problem, whether
a kernel passed, the attempts and seconds to the first correct one, what failed before it and how, the kept attempt;
per level, the correct share and the solve rate against the time budget (from the store's timestamps, as
`kernelsearch report` draws it). With --speed, from the summaries `kernelsearch retime` rewrote on a GPU: per
problem the kernel the CPU run kept and the fastest correct one (the run's best after the re-time, timed again on its
cold check), each against eager and torch.compile; per level fast_1 and the geometric mean.

    python3 benchmarks/real_model_table.py OUT_DIR [--speed]
"""
from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from kernelsearch.search.run_dir import STORE_NAME, SUMMARY_NAME  # noqa: E402
from kernelsearch.verify.verdict import Status, Timing  # noqa: E402

LEVELS = {"l1": "Level 1", "l2": "Level 2", "l3": "Level 3", "attn": "attention"}
BUDGET_MARKS_S = (60, 120, 300, 600, 900, 1800, 3600)  # the reference's 15 minutes among them


def attempts(run: Path) -> list[dict]:
    store = sqlite3.connect(run / STORE_NAME)
    store.row_factory = sqlite3.Row
    return [dict(r) for r in store.execute("select id, lane, strategy, status, finished_s from attempts order by id")]


def row(key: str, run: Path) -> dict:
    rows = attempts(run)
    summary = json.loads((run / SUMMARY_NAME).read_text()) if (run / SUMMARY_NAME).exists() else {}
    first = next((r for r in rows if r["status"] == Status.CORRECT), None)
    before = [r for r in rows if first is None or r["id"] < first["id"]]
    return {"key": key, "solved": bool(summary.get("solved")), "attempts": len(rows),
            "first": first["id"] if first else None, "first_s": first["finished_s"] if first else None,
            "failed_before": [f"{r['id']} {r['status']}" for r in before if r["status"] != Status.CORRECT],
            "statuses": summary.get("statuses", {}), "kept": (summary.get("best") or {}).get("attempt"),
            "elapsed_s": summary.get("elapsed_s")}


def speed(key: str, run: Path) -> dict | None:
    """The re-time's figures for one problem: None where it was not re-timed."""
    summary = json.loads((run / SUMMARY_NAME).read_text()) if (run / SUMMARY_NAME).exists() else {}
    retimed = summary.get("retime")
    if not retimed:
        return None
    by_attempt = {r["attempt"]: r for r in retimed["attempts"]}
    kept_before = by_attempt.get(retimed.get("best_before")) or {}
    best = summary.get("best") or {}
    cold = Timing.of((best.get("cold_check") or {}).get("timing"))
    return {"key": key, "device": retimed.get("device"), "kept_before": retimed.get("best_before"),
            "kept_before_status": kept_before.get("status"),
            "kept_before_eager": kept_before.get("speedup_vs_eager"),
            "kept_before_compile": kept_before.get("speedup_vs_compile"), "best": best.get("attempt"),
            "best_eager": cold and cold.speedup("eager"), "best_compile": cold and cold.speedup("compile"),
            "best_ms": cold and cold.candidate_ms, "correct": sum(r["status"] == Status.CORRECT
                                                                 for r in retimed["attempts"]),
            "timed": sum(1 for r in retimed["attempts"] if not r["status"].startswith("same code"))}


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def speed_tables(out: Path) -> None:
    rows = [r for d in sorted((out / "problems").iterdir()) if (r := speed(d.name, d))]
    x = lambda v: (f"{v:.2f}x" if v >= 0.1 else f"{v:.2g}x") if v else "—"  # noqa: E731  (l1_63 attempt 1: 0.0049x)
    print("| problem | correct at the original size | kept on the CPU: attempt, ×eager, ×compile | "
          "fastest correct: attempt, ms, ×eager, ×compile |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['key']} | {r['correct']}/{r['timed']} | {r['kept_before']}, {x(r['kept_before_eager'])}, "
              f"{x(r['kept_before_compile'])} | "
              + (f"{r['best']}, {r['best_ms']:.4g}, {x(r['best_eager'])}, {x(r['best_compile'])} |" if r["best"]
                 else "none |"))
    print("\n| level | problems | correct (re-timed) | fast_1 vs eager | fast_1 vs compile | geomean ×eager | "
          "geomean ×compile |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for prefix, name in LEVELS.items():
        level = [r for r in rows if r["key"].split("_")[0] == prefix]
        if level:
            solved = [r for r in level if r["best"]]
            print(f"| {name} | {len(level)} | {len(solved)}/{len(level)} | "
                  f"{sum((r['best_eager'] or 0) > 1 for r in solved)}/{len(level)} | "
                  f"{sum((r['best_compile'] or 0) > 1 for r in solved)}/{len(level)} | "
                  f"{x(geomean([r['best_eager'] for r in solved if r['best_eager']]))} | "
                  f"{x(geomean([r['best_compile'] for r in solved if r['best_compile']]))} |")


def main() -> int:
    out = Path(sys.argv[1])
    if "--speed" in sys.argv[2:]:
        speed_tables(out)
        return 0
    rows = [row(d.name, d) for d in sorted((out / "problems").iterdir()) if (d / STORE_NAME).exists()]
    print("| problem | correct | attempts | first correct: attempt, s | failed before it | all statuses | kept |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        first = f"{r['first']}, {r['first_s']:.0f}" if r["first"] else "—"
        print(f"| {r['key']} | {'yes' if r['solved'] else 'no'} | {r['attempts']} | {first} | "
              f"{', '.join(r['failed_before']) or '—'} | {json.dumps(r['statuses'])} | {r['kept'] or '—'} |")
    print("\n| level | problems | correct | solved within " + " | ".join(f"{s // 60} min" if s >= 60 else f"{s} s"
                                                                   for s in BUDGET_MARKS_S) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in BUDGET_MARKS_S) + " |")
    for prefix, name in LEVELS.items():
        level = [r for r in rows if r["key"].split("_")[0] == prefix]
        if level:
            marks = [sum(1 for r in level if r["first_s"] is not None and r["first_s"] <= s) for s in BUDGET_MARKS_S]
            print(f"| {name} | {len(level)} | {sum(r['solved'] for r in level)} | "
                  + " | ".join(f"{m}/{len(level)}" for m in marks) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
