"""One problem's search (`solve`): lanes ask the model, the verifier judges, the best proven kernel wins."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from ..llm.client import LLMClient
from ..problem import Problem
from ..store import ELAPSED
from ..verify import Verdict, WorkerPool, make_request
from .archive import Entry
from .display import Display
from .lanes import Search
from .run_dir import RunDir, best_header
from .seed import Seed
from .solve_config import SolveConfig


@dataclass
class SolveResult:
    run_dir: Path
    summary: dict
    best: Entry | None = None
    cold: Verdict | None = None
    fatal: str | None = None


# ---- the run directory (search/run_dir.py names its files) -----------------------------------------------------
async def solve(problem: Problem, config: SolveConfig, client: LLMClient, pool: WorkerPool, run_dir: Path,
                display: Display, name: str | None = None, variant_names: set[str] | None = None,
                seed: Seed | None = None) -> SolveResult:
    """Search until the budget or a cap (from a `seed` kernel, verified first, when one is given), then re-verify
    the winner cold and write best.py and summary.json."""
    run = RunDir(run_dir)
    store = run.open_store()
    try:
        search = Search(problem, config, client, pool, store, display, name, variant_names)
        store.set_meta("sessions", search.session + 1)
        await search.run(seed)
        best, cold = await cold_check(search)
        summary = write_outputs(run, search, best, cold)
        display.finish(search.name, summary["headline"])
        return SolveResult(run_dir, summary, best, cold, search.fatal)
    finally:
        store.close()


async def cold_check(search: Search) -> tuple[Entry | None, Verdict | None]:
    """The winner again in a freshly started worker with new seeds; if it fails there, the next best gets the same
    test. It goes through the shared pool, so it never times on a GPU beside another job."""
    cfg = search.config
    for entry in search.archive.ranked()[:3]:
        request = make_request(search.problem, entry.code, f"attempt{entry.attempt_id}", search.variant_names,
                               dtype=cfg.dtype, trials=cfg.trials, seed=cfg.seed + 1000, timing=True,
                               strict=cfg.strict, fresh_worker=True, **cfg.judging())
        verdict = await asyncio.wrap_future(search.pool.submit(request))
        search.store.set_meta(f"cold_check_{entry.attempt_id}", verdict.to_json())
        if verdict.ok:
            return entry, verdict
        search.display.log(search.name, f"attempt {entry.attempt_id} failed the cold re-check: {verdict.status}")
    return None, None


def write_outputs(run: RunDir, search: Search, best: Entry | None, cold: Verdict | None) -> dict:
    attempts = search.store.attempts()
    statuses: dict[str, int] = {}
    for a in attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    if best:
        kept = f"attempt {best.attempt_id} (lane {best.lane}, {best.strategy})"
        headline = (f"best: {kept}, correct on a cold re-check, {cold.timed.short()}" if cold.timed
                    else f"kept {kept}: the first correct kernel to pass a cold re-check; nothing timed: "
                         f"`kernelsearch retime {run}` on a GPU ranks them")  # no GPU: not the fastest, the first
        run.write_best(best_header(search.problem.name, best.attempt_id, cold), best.code)
    else:
        headline = "no kernel proven correct" + (f" ({search.fatal})" if search.fatal else "")
    summary = {
        "problem": search.problem.name, "solved": best is not None, "headline": headline,
        "stop_reason": search.stop_reason, "fatal_error": search.fatal,
        "tolerance": search.config.resolved_tolerance().describe(),
        "elapsed_s": round(search.store.meta(ELAPSED, 0.0), 1), "budget_s": search.config.budget_s,
        "sessions": search.store.meta("sessions", 1), "attempts": len(attempts), "statuses": statuses,
        "tokens": {k: sum(getattr(a, k) or 0 for a in attempts)
                   for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens")},
        "model": {"name": search.client.config.model, "base_url": search.client.config.base_url},
        "device": search.pool.info.get("device_name", search.pool.device),
        "best": None if best is None else {
            "attempt": best.attempt_id, "lane": best.lane, "strategy": best.strategy, "found_after_s":
            round(best.finished_s, 1), "search_timing": best.verdict.timing, "cold_check": cold.to_json()},
    }
    run.write_summary(summary)
    return summary

