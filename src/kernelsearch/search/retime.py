"""`kernelsearch retime RUN`: every correct kernel of a run verified and timed again, at the problem's original sizes
by default, and the fastest made the run's best (best.py and summary.json rewritten, every timing kept in the
store's `retimes` table).

A search without a GPU times nothing, so it keeps its first correct kernel; this is the GPU pass that ranks all of
them. The winner then passes the same cold re-check as a search's (a fresh worker, new seeds) before it is kept."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..problem import Problem, load_problem
from ..shrink import as_overrides
from ..verify import Verdict, VerifyRequest, make_request
from .archive import Entry, rank, source_key
from .run_dir import RunDir, best_header
from .suite_run import _search_settings, load_bench

SIZES = ("original", "searched")  # the problem file's own sizes, or the ones searched at (--set, --shrink applied)
# Seeds after the search's: it drew trial inputs from seed and seed + 1000 (its cold re-check); these are unseen.
RETIME_SEED_OFFSET, COLD_SEED_OFFSET = 2000, 3000
COLD_TRIES = 3  # as the search's cold check: the next fastest gets the test when the winner fails it


@dataclass
class Target:
    """One search directory to re-time and how its kernels were verified during the search."""
    run: RunDir
    name: str
    problem: Problem  # at the sizes to time at
    options: dict  # make_request's: dtype, strict, tolerance, atol, rtol, trials
    variant_names: set[str] | None
    seed: int


def targets(run: RunDir, sizes: str = "original") -> list[Target]:
    """A solve run's one search, or each searched problem of a bench (a folder of solve runs under problems/, as
    benchmarks/real_model_sample.sh lays them out, is re-timed as such a bench: each run with its own settings)."""
    if run.holds_search():
        return [_solve_target(run, sizes)]
    found_under = _search_settings(run.path)  # per problem: dtype, strictness, tolerance, second-shape sizes
    search = load_bench(run.path)["search"] if run.bench.is_file() else {}
    found = []
    for d in run.problem_dirs():
        if not (d.holds_search() and d.problem_file.is_file()):
            continue
        key = d.path.name
        if not run.bench.is_file() and "search" in d.read_config():  # a folder of solve runs: each its own
            found.append(_solve_target(d, sizes, name=key))
            continue
        options = {"trials": search.get("trials", 5), **found_under.get(key, {})}
        names = options.pop("variant_names", None)
        problem = load_problem(d.problem_file, as_overrides(d.shrink()) if sizes == "searched" else None)
        problem.name = key
        found.append(Target(d, key, problem, options, set(names) if names else None, search.get("seed", 42)))
    return found


def _solve_target(run: RunDir, sizes: str, name: str | None = None) -> Target:
    settings = run.load_settings()
    overrides = settings.searched_overrides() if sizes == "searched" else {}
    problem = load_problem(settings.problem, overrides)
    if name:
        problem.name = name
    s = settings.search
    options = {"dtype": s.dtype, "strict": s.strict, "trials": s.trials, **s.judging()}
    return Target(run, problem.name, problem, options, settings.variants(), s.seed)


def retime(target: Target, verify: Callable[[VerifyRequest], Verdict], sizes: str = "original",
           progress: Callable[[str], None] = print, reuse_on: str | None = None) -> dict:
    """Verify and time every distinct correct attempt of `target`, keep the fastest that also passes a cold
    re-check: best.py and summary.json are rewritten, each verdict recorded in the store. With `reuse_on` (a device
    name), an attempt that device already re-timed at these sizes keeps that verdict: a re-time that was stopped
    goes on where it stopped. Returns the summary."""
    run = target.run
    store = run.open_store()
    try:
        attempts = [a for a in store.attempts() if a.correct and a.code]
        earlier = {r["attempt_id"]: r["verdict"] for r in store.retimes()
                   if reuse_on and r["device"] == reuse_on and r["sizes"] == sizes}
        seen: dict[str, int] = {}
        passed: list[Entry] = []
        rows = []
        for a in attempts:
            same = seen.setdefault(source_key(a.code), a.id)  # the search's own notion of the same kernel
            if same != a.id:
                rows.append({"attempt": a.id, "status": "same code as attempt %d" % same})
                continue
            if a.id in earlier:
                verdict = Verdict.from_json(earlier[a.id])
            else:
                verdict = verify(_request(target, a.code, f"attempt{a.id}", RETIME_SEED_OFFSET))
                store.record_retime(a.id, verdict.device, sizes, verdict.to_json())
            timed = verdict.timed
            rows.append({"attempt": a.id, "status": verdict.status,
                         "speedup_vs_eager": timed and timed.speedup("eager"),
                         "speedup_vs_compile": timed and timed.speedup("compile"),
                         "candidate_ms": timed and timed.candidate_ms})
            progress(f"{target.name}: attempt {a.id}: {verdict.status}" + (f", {timed.short()}" if timed else "")
                     + (" (re-timed before on this device)" if a.id in earlier else ""))
            if verdict.ok:
                passed.append(Entry(a.id, a.lane, a.strategy, a.code, verdict, a.finished_s or a.started_s))
        best, cold = _cold_check(target, sorted(passed, key=rank, reverse=True), verify, progress)
        previous = run.read_summary() or {"problem": target.name}
        summary = _rewrite(run, target, previous, best, cold, rows, sizes)
    finally:
        store.close()
    progress(f"{target.name}: {summary['headline']}")
    return summary


def retime_all(found: list[Target], pool, sizes: str = "original", progress: Callable[[str], None] = print,
               again: bool = False) -> list:
    """`retime` for each target, as many at once as the pool has workers (a bench's problems over a cluster's
    GPUs; one worker: one after another). Each worker runs one job at a time, so a timing never shares its GPU.
    Unless `again`, what the pool's device re-timed before is kept (a Ray cluster says its device only once it
    answers: there, everything is timed). The summaries, in the targets' order."""
    reuse_on = None if again else pool_device(pool)
    if len(pool.workers) <= 1 or len(found) <= 1:
        return [retime(t, pool.verify, sizes, progress, reuse_on) for t in found]
    from concurrent.futures import ThreadPoolExecutor
    executor = ThreadPoolExecutor(max_workers=min(len(pool.workers), len(found)), thread_name_prefix="ks-retime")
    try:
        futures = [executor.submit(retime, t, pool.verify, sizes, progress, reuse_on) for t in found]
        return [f.result() for f in futures]
    finally:  # stopped: the targets not begun are dropped; the running ones end when the caller closes the pool
        executor.shutdown(wait=False, cancel_futures=True)


def pool_device(pool, wait_s: float = 180.0) -> str | None:
    """The GPU's name as the pool's first worker reported it (waiting for it to start), or None."""
    started = getattr(pool, "started", None)
    if started is not None:
        started.wait(wait_s)
    return pool.info.get("device_name")


def _request(target: Target, code: str, name: str, seed_offset: int, **extra) -> VerifyRequest:
    return make_request(target.problem, code, name, target.variant_names, seed=target.seed + seed_offset,
                        timing=True, **target.options, **extra)


def _cold_check(target: Target, ranked: list[Entry], verify, progress) -> tuple[Entry | None, Verdict | None]:
    for entry in ranked[:COLD_TRIES]:
        verdict = verify(_request(target, entry.code, f"attempt{entry.attempt_id}", COLD_SEED_OFFSET,
                                  fresh_worker=True))
        if verdict.ok:
            return entry, verdict
        progress(f"{target.name}: attempt {entry.attempt_id} failed the cold re-check: {verdict.status}")
    return None, None


def _rewrite(run: RunDir, target: Target, previous: dict, best: Entry | None, cold: Verdict | None, rows: list,
             sizes: str) -> dict:
    where = f"{cold.device if cold else 'this machine'}, {sizes} sizes"
    # the kernel the search kept: a re-time after another (one that went on where a stopped one stopped, or one at
    # other sizes) keeps the first re-time's, not the best that re-time wrote (#26's l1_63 said "kept 3" for 1)
    before = (previous["retime"]["best_before"] if "retime" in previous
              else (previous.get("best") or {}).get("attempt"))
    summary = {**previous, "solved": best is not None}
    summary["retime"] = {"sizes": sizes, "device": cold.device if cold else None, "best_before": before,
                         "attempts": rows}
    if best is None:
        summary["best"] = None
        summary["headline"] = f"re-timed ({where}): no kernel of the run passed at these sizes"
        if run.best.is_file():  # its code stays in the store; best.py would claim a kernel that failed here
            run.best.unlink()
    else:
        timed = cold.timed
        summary["best"] = {"attempt": best.attempt_id, "lane": best.lane, "strategy": best.strategy,
                           "found_after_s": round(best.finished_s, 1), "search_timing": best.verdict.timing,
                           "cold_check": cold.to_json()}
        summary["headline"] = (f"re-timed ({where}): best is attempt {best.attempt_id} (lane {best.lane}, "
                               f"{best.strategy})" + (f", {timed.short()} on its cold check" if timed
                                                      else ", not timed (no GPU)")
                               + (f"; was attempt {before}" if before not in (None, best.attempt_id) else ""))
        run.write_best(best_header(target.name, best.attempt_id, cold, f"re-timed at the {sizes} sizes"), best.code)
    run.write_summary(summary)
    return summary
