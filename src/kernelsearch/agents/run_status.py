"""`run_status`: where a solve or bench run directory stands now (finished or not, its attempts) and its best
kernel: the one that passed the cold re-check once the search has finished, the best so far while it runs."""
from __future__ import annotations

from pathlib import Path

from ..search.archive import Archive, Entry
from ..search.run_dir import RunDir, RunDirError
from ..store import ELAPSED, StoreError
from ..verify.verdict import Status, Verdict
from .arguments import ArgumentError


def run_status(run_dir: Path) -> dict:
    """A solve run (store.sqlite) with its best kernel's source, or a bench run (bench.json) with each problem's
    state and best kernel's path."""
    if not run_dir.is_dir():
        raise ArgumentError(f"run directory not found: {run_dir}")
    run = RunDir(run_dir)
    try:
        if run.holds_search():
            return {"run_dir": str(run_dir), "kind": "solve", **search_state(run_dir, with_code=True)}
        if run.holds_bench():
            return {"run_dir": str(run_dir), "kind": "bench", **bench_state(run_dir)}
    except (StoreError, RunDirError) as e:
        raise ArgumentError(str(e)) from None
    raise ArgumentError(f"{run_dir} is not a kernelsearch run (no {run.store.name}, no {run.bench.name})")


def search_state(d: Path, with_code: bool) -> dict:
    """One problem's search: its attempts by status and its best kernel."""
    run = RunDir(d)
    store = run.open_store()
    try:
        attempts = store.attempts()
        elapsed = store.meta(ELAPSED, 0.0)
    finally:
        store.close()
    statuses: dict[str, int] = {}
    for a in attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    config = run.read_config()
    state = {"problem": config.get("problem"), "attempts": len(attempts), "statuses": statuses,
             "elapsed_s": round(elapsed, 1), "budget_s": config.get("search", {}).get("budget_s")}
    summary = run.read_summary()
    if summary is not None:
        state.update(state="finished", headline=summary.get("headline"), stop_reason=summary.get("stop_reason"))
        best = summary.get("best")
        if best:
            timed = Verdict.from_json(best["cold_check"]).timed
            state["best"] = {"attempt": best["attempt"], "checked": "passed the cold re-check in a fresh worker",
                             "speedup_vs_eager": timed.speedup("eager") if timed else None,
                             "kernel_path": str(run.best) if run.best.is_file() else None}
            if with_code and run.best.is_file():
                state["best"]["code"] = run.read_best()
        return state
    state["state"] = "unfinished"
    state["note"] = (f"still running, or stopped ({statuses.get(Status.PENDING, 0)} attempt(s) pending); a stopped run "
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
    run = RunDir(run_dir)
    planned = []
    if run.bench.is_file():
        planned = [p["key"] for p in run.read_bench().get("problems", [])]
    folders = [d.path.name for d in run.problem_dirs()]
    problems = []
    for key in planned + [k for k in folders if k not in planned]:
        d = run.problem(key)
        if d.error.is_file():
            problems.append({"key": key, "state": "error", "error": d.error.read_text().splitlines()[0]})
        elif d.holds_search():
            problems.append({"key": key, **search_state(d.path, with_code=False)})
        else:
            problems.append({"key": key, "state": "not started"})
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["state"]] = counts.get(p["state"], 0) + 1
    state = {"problems": problems, "states": counts, "with_kernel": sum("best" in p for p in problems)}
    metrics = run.read_summary()  # written once the bench has ended: its metrics
    if metrics is not None:
        state["metrics"] = {k: metrics.get(k) for k in ("problems", "correct", "correctness", "fast_p",
                                                        "geomean_speedup")}
        state["report"] = str(run.report) if run.report.is_file() else None
    elif counts.get("finished", 0) < len(problems):
        state["note"] = (f"still running, or stopped; a stopped bench continues with "
                         f"`kernelsearch bench --resume {run_dir}`")
    return state
