"""`run_status`: where a solve or bench run directory stands now (finished or not, its attempts) and its best
kernel: the one that passed the cold re-check once the search has finished, the best so far while it runs."""
from __future__ import annotations

import json
from pathlib import Path

from ..search.archive import Archive, Entry
from ..search.bench import BENCH_NAME, ERROR_FILE, PROBLEMS_DIR
from ..search.solve import BEST_NAME, CONFIG_NAME, STORE_NAME, SUMMARY_NAME
from ..store import RunStore
from ..verify.verdict import Verdict
from .arguments import ArgumentError


def run_status(run_dir: Path) -> dict:
    """A solve run (store.sqlite) with its best kernel's source, or a bench run (bench.json) with each problem's
    state and best kernel's path."""
    if not run_dir.is_dir():
        raise ArgumentError(f"run directory not found: {run_dir}")
    if (run_dir / STORE_NAME).is_file():
        return {"run_dir": str(run_dir), "kind": "solve", **search_state(run_dir, with_code=True)}
    if (run_dir / BENCH_NAME).is_file() or (run_dir / PROBLEMS_DIR).is_dir():
        return {"run_dir": str(run_dir), "kind": "bench", **bench_state(run_dir)}
    raise ArgumentError(f"{run_dir} is not a kernelsearch run (no {STORE_NAME}, no {BENCH_NAME})")


def search_state(d: Path, with_code: bool) -> dict:
    """One problem's search: its attempts by status and its best kernel."""
    store = RunStore(d / STORE_NAME)
    try:
        attempts = store.attempts()
        elapsed = store.meta("elapsed_s", 0.0)
    finally:
        store.close()
    statuses: dict[str, int] = {}
    for a in attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    config = json.loads((d / CONFIG_NAME).read_text()) if (d / CONFIG_NAME).is_file() else {}
    state = {"problem": config.get("problem"), "attempts": len(attempts), "statuses": statuses,
             "elapsed_s": round(elapsed, 1), "budget_s": config.get("search", {}).get("budget_s")}
    summary_path = d / SUMMARY_NAME
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        state.update(state="finished", headline=summary.get("headline"), stop_reason=summary.get("stop_reason"))
        best = summary.get("best")
        if best:
            state["best"] = {"attempt": best["attempt"], "checked": "passed the cold re-check in a fresh worker",
                             "speedup_vs_eager": (best["cold_check"].get("timing") or {}).get("speedup_vs_eager"),
                             "kernel_path": str(d / BEST_NAME) if (d / BEST_NAME).is_file() else None}
            if with_code and (d / BEST_NAME).is_file():
                state["best"]["code"] = (d / BEST_NAME).read_text()
        return state
    state["state"] = "unfinished"
    state["note"] = (f"still running, or stopped ({statuses.get('pending', 0)} attempt(s) pending); a stopped run "
                     f"continues with `kernelsearch solve --resume {d}`")
    archive = Archive()  # the search's own ranking, over what it has verified so far
    for a in attempts:
        if a.correct and a.verdict:
            archive.add(Entry(a.id, a.lane, a.strategy, a.code, Verdict.from_json(a.verdict), a.finished_s or 0.0))
    best = archive.best()
    if best:
        state["best"] = {"attempt": best.attempt_id, "checked": "verified during the search (not yet re-checked cold)",
                         "speedup_vs_eager": best.speedup, "summary": best.summary()}
        if with_code:
            state["best"]["code"] = best.code
    return state


def bench_state(run_dir: Path) -> dict:
    """Each problem of a bench: not started, unfinished, finished or failed, with its best kernel's path."""
    planned = []
    if (run_dir / BENCH_NAME).is_file():
        planned = [p["key"] for p in json.loads((run_dir / BENCH_NAME).read_text()).get("problems", [])]
    folders = sorted(p.name for p in (run_dir / PROBLEMS_DIR).iterdir() if p.is_dir()) \
        if (run_dir / PROBLEMS_DIR).is_dir() else []
    problems = []
    for key in planned + [k for k in folders if k not in planned]:
        d = run_dir / PROBLEMS_DIR / key
        if (d / ERROR_FILE).is_file():
            problems.append({"key": key, "state": "error", "error": (d / ERROR_FILE).read_text().splitlines()[0]})
        elif (d / STORE_NAME).is_file():
            problems.append({"key": key, **search_state(d, with_code=False)})
        else:
            problems.append({"key": key, "state": "not started"})
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["state"]] = counts.get(p["state"], 0) + 1
    state = {"problems": problems, "states": counts, "with_kernel": sum("best" in p for p in problems)}
    if (run_dir / SUMMARY_NAME).is_file():  # written once the bench has ended: its metrics
        metrics = json.loads((run_dir / SUMMARY_NAME).read_text())
        state["metrics"] = {k: metrics.get(k) for k in ("problems", "correct", "correctness", "fast_p",
                                                        "geomean_speedup")}
        state["report"] = str(run_dir / "report.html") if (run_dir / "report.html").is_file() else None
    elif counts.get("finished", 0) < len(problems):
        state["note"] = (f"still running, or stopped; a stopped bench continues with "
                         f"`kernelsearch bench --resume {run_dir}`")
    return state
