"""One problem's search (`solve`): lanes ask the model, the verifier judges, the best proven kernel wins."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..llm.answer import extract_code
from ..llm.client import LLMClient, LLMError, ModelConfig
from ..llm.prompt import Previous, build_prompt
from ..problem import Problem
from ..store import RunStore
from ..verify import Verdict, WorkerPool, make_request
from ..verify.tolerance import DEFAULT_PROFILE, Tolerance, resolve_tolerance
from .archive import Archive, Entry
from .display import Display
from .strategies import choose

STORE_NAME, CONFIG_NAME, BEST_NAME, SUMMARY_NAME = "store.sqlite", "config.json", "best.py", "summary.json"
TOLERANCE_FIELDS = ("tolerance", "atol", "rtol")  # SolveConfig's and VerifyRequest's names for the same settings
MAX_FAILED_CALLS_IN_A_ROW = 5  # a sixth failure in a row means the endpoint is down, not busy


@dataclass
class SolveConfig:
    budget_s: float = 900.0  # wall clock for the whole search (15 minutes per problem is the reference)
    lanes: int = 4
    language: str = "triton"  # triton | cuda
    dtype: str = "fp32"
    tolerance: str = DEFAULT_PROFILE  # verify.tolerance's profile; atol/rtol, when set, replace its values
    atol: float | None = None
    rtol: float | None = None
    device: str = "auto"
    strict: bool = False
    trials: int = 5
    seed: int = 42
    max_attempts: int | None = None  # over all lanes and sessions
    max_tokens: int | None = None  # completion tokens over all lanes and sessions
    target_speedup: float | None = None  # stop once the best kernel is this much faster than eager PyTorch
    restart_after: int = 3  # failed attempts in a row before a lane starts over from the best kernel
    compile_timeout_s: float = 300.0
    run_timeout_s: float = 120.0

    def tolerance_settings(self) -> dict:
        """tolerance, atol and rtol, as VerifyRequest takes them."""
        return {name: getattr(self, name) for name in TOLERANCE_FIELDS}

    def resolved_tolerance(self) -> Tolerance:
        return resolve_tolerance(self.tolerance, self.dtype, self.atol, self.rtol)


@dataclass
class Lane:
    index: int
    step: int = 0
    previous: Previous | None = None
    failures: int = 0  # failed attempts in a row
    optimizations: int = 0  # optimization strategies tried so far (the rotation's position)


@dataclass
class SolveResult:
    run_dir: Path
    summary: dict
    best: Entry | None = None
    cold: Verdict | None = None
    fatal: str | None = None


class Search:
    """The lanes of one problem. Model calls are I/O and run concurrently; verification queues for the pool."""

    def __init__(self, problem: Problem, config: SolveConfig, client: LLMClient, pool: WorkerPool, store: RunStore,
                 display: Display, name: str | None = None, variant_names: set[str] | None = None):
        self.variant_names = variant_names  # which size constants the second shape may change (None: all)
        self.problem, self.config, self.client, self.pool, self.store = problem, config, client, pool, store
        self.display, self.name = display, name or problem.name
        self.archive = Archive()
        self.lanes = [Lane(i) for i in range(config.lanes)]
        self.session = store.meta("sessions", 0)
        self.spent_before = store.meta("elapsed_s", 0.0)
        self.began = time.monotonic()
        self.stop = asyncio.Event()
        self.stop_reason = ""
        self.fatal: str | None = None
        self.failed_calls = 0
        self.restore()

    # ---- state ---------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.spent_before + time.monotonic() - self.began

    def restore(self) -> None:
        """After --resume: the archive and each lane's last attempt come back from the store."""
        self.store.abandon_pending()
        for a in self.store.attempts():
            if a.lane >= len(self.lanes):
                continue
            lane = self.lanes[a.lane]
            lane.step = max(lane.step, a.step)
            lane.optimizations += a.strategy in _optimizations()
            verdict = Verdict.from_json(a.verdict) if a.verdict else None
            if a.status in ("llm_error", "cancelled"):
                continue
            lane.previous = Previous(a.strategy, a.code, verdict, problem=a.note or "")
            lane.failures = 0 if a.correct else lane.failures + 1
            if a.correct and verdict is not None:
                self.archive.add(Entry(a.id, a.lane, a.strategy, a.code, verdict, a.finished_s or a.started_s))

    def totals(self) -> tuple[int, int]:
        # attempts in flight count, so that lanes starting together cannot overshoot the attempt cap
        rows = self.store.db.execute("SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0) FROM attempts "
                                     "WHERE status != 'cancelled'").fetchone()
        return rows[0], rows[1]

    def check_caps(self) -> None:
        cfg = self.config
        attempts, tokens = self.totals()
        best = self.archive.best()
        if self.elapsed() >= cfg.budget_s:
            self.halt("budget spent")
        elif cfg.max_attempts is not None and attempts >= cfg.max_attempts:
            self.halt(f"attempt cap reached ({attempts})")
        elif cfg.max_tokens is not None and tokens >= cfg.max_tokens:
            self.halt(f"token cap reached ({tokens} completion tokens)")
        elif cfg.target_speedup and best and (best.speedup or 0) >= cfg.target_speedup:
            self.halt(f"target reached ({best.speedup:.3g}x eager >= {cfg.target_speedup:g}x)")

    def halt(self, reason: str, fatal: bool = False) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            if fatal:
                self.fatal = reason
            self.stop.set()

    # ---- the loop ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        remaining = self.config.budget_s - self.elapsed()
        self.display.start(self.name, self.config.budget_s, max(0.0, remaining), len(self.lanes))
        self.check_caps()
        if self.stop.is_set():
            return
        lanes = [asyncio.create_task(self.lane_loop(lane)) for lane in self.lanes]
        stopped = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait([stopped, asyncio.gather(*lanes, return_exceptions=True)], timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:  # on Ctrl-C too (the search is cancelled): each lane records its attempt in flight as cancelled
            for task in (*lanes, stopped):
                task.cancel()
            results = await asyncio.gather(*lanes, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        if errors:  # a bug of ours, not the model's: say so rather than hide it behind "budget spent"
            self.halt(f"internal error: {type(errors[0]).__name__}: {errors[0]}", fatal=True)
        self.halt("budget spent")  # lanes end only on a stop or an error, so this is the wait's timeout
        self.store.set_meta("elapsed_s", round(self.elapsed(), 3))

    async def lane_loop(self, lane: Lane) -> None:
        while True:
            self.check_caps()
            if self.stop.is_set():
                return
            await self.attempt(lane)

    async def attempt(self, lane: Lane) -> None:
        cfg = self.config
        best = self.archive.best()
        previous = lane.previous
        if lane.failures >= cfg.restart_after:  # stuck: start over from the best kernel (or from scratch)
            previous = Previous(best.strategy, best.code, best.verdict) if best else None
            lane.failures = 0
        strategy = choose(previous, lane.index, lane.optimizations, cfg.language)
        lane.optimizations += strategy.name in _optimizations()  # the rotation moves on whatever the outcome
        prompt = build_prompt(self.problem.source, language=cfg.language, dtype=cfg.dtype,
                              tolerance=cfg.resolved_tolerance(),
                              device=self.pool.info.get("device_name", self.pool.device), strict=cfg.strict,
                              strategy=strategy, best=(best.code, best.summary()) if best else None,
                              previous=previous)
        lane.step += 1
        step = lane.step
        base_id = best.attempt_id if best else None
        attempt_id = self.store.begin(lane=lane.index, step=step, strategy=strategy.name, base_id=base_id,
                                      session=self.session, started_s=round(self.elapsed(), 3), prompt=prompt)
        self.display.attempt_started(self.name, lane.index, step, strategy.name)
        try:
            await self.ask_and_verify(lane, attempt_id, step, strategy.name, prompt)
        except asyncio.CancelledError:
            self.store.update(attempt_id, status="cancelled", finished_s=round(self.elapsed(), 3))
            raise

    async def ask_and_verify(self, lane: Lane, attempt_id: int, step: int, strategy: str, prompt: str) -> None:
        cfg = self.config
        try:
            completion = await self.client.complete(
                prompt, on_progress=lambda received: self.display.receiving(self.name, lane.index, step, received))
        except LLMError as e:
            self.store.update(attempt_id, status="llm_error", note=str(e), finished_s=round(self.elapsed(), 3))
            self.display.attempt_finished(self.name, lane.index, step, strategy, "llm_error", str(e))
            self.failed_calls += 1
            if e.fatal or self.failed_calls > MAX_FAILED_CALLS_IN_A_ROW:
                self.halt(str(e), fatal=True)
            else:
                await asyncio.sleep(min(60.0, 2.0 ** self.failed_calls))  # the SDK already retried; give it air
            return
        self.failed_calls = 0
        extracted = extract_code(completion.answer, completion.truncated)
        self.store.update(attempt_id, reasoning=completion.reasoning, answer=completion.answer, code=extracted.code,
                          note=extracted.note, prompt_tokens=completion.prompt_tokens,
                          completion_tokens=completion.completion_tokens,
                          reasoning_tokens=completion.reasoning_tokens, llm_s=completion.elapsed_s)
        if extracted.code is None:
            self.store.update(attempt_id, status="no_code", finished_s=round(self.elapsed(), 3))
            lane.previous = Previous(strategy, None, None, problem=f"No kernel was found in your answer: "
                                     f"{extracted.note}. Answer with one complete ```python block.")
            lane.failures += 1
            self.display.attempt_finished(self.name, lane.index, step, strategy, "no_code", extracted.note)
            return
        self.display.verifying(self.name, lane.index, step)
        request = make_request(self.problem, extracted.code, f"attempt{attempt_id}", self.variant_names,
                               dtype=cfg.dtype, trials=cfg.trials, seed=cfg.seed, timing=True, strict=cfg.strict,
                               **cfg.tolerance_settings())
        verdict = await asyncio.wrap_future(self.pool.submit(request))
        timing = verdict.timing or {}
        self.store.update(attempt_id, status=verdict.status, verdict=verdict.to_json(),
                          speedup_eager=timing.get("speedup_vs_eager"),
                          speedup_compile=timing.get("speedup_vs_compile"),
                          candidate_ms=(timing.get("candidate") or {}).get("median_ms"), verify_s=verdict.elapsed_s,
                          finished_s=round(self.elapsed(), 3))
        self.store.set_meta("elapsed_s", round(self.elapsed(), 3))
        lane.previous = Previous(strategy, extracted.code, verdict)
        detail = verdict.message.splitlines()[0][:120] if verdict.message else ""
        if verdict.ok:
            lane.failures = 0
            entry = Entry(attempt_id, lane.index, strategy, extracted.code, verdict, self.elapsed())
            detail = entry.summary()
            if self.archive.add(entry):
                self.display.new_best(self.name, entry.summary())
        else:
            lane.failures += 1
        self.display.attempt_finished(self.name, lane.index, step, strategy, verdict.status, detail)
        if verdict.status == "problem_error":  # no kernel can pass a problem that cannot run here
            self.halt(f"the problem cannot be verified here: {verdict.message.splitlines()[0]}")


def _optimizations() -> set[str]:
    from ..llm.prompt import strategies
    return {name for name, s in strategies().items() if "correct" in s.after}


# ---- the run directory -------------------------------------------------------------------------------------
def save_config(run_dir: Path, problem_path: str, overrides: dict, solve: SolveConfig, model: ModelConfig) -> None:
    """The resolved configuration, so that --resume continues the same run (the API key itself is never saved)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"problem": str(Path(problem_path).resolve()), "overrides": overrides, "search": asdict(solve),
            "model": asdict(model.resolved())}
    (run_dir / CONFIG_NAME).write_text(json.dumps(data, indent=2) + "\n")


def load_config(run_dir: Path) -> tuple[str, dict, SolveConfig, ModelConfig]:
    data = json.loads((run_dir / CONFIG_NAME).read_text())
    return data["problem"], data.get("overrides", {}), SolveConfig(**data["search"]), ModelConfig(**data["model"])


async def solve(problem: Problem, config: SolveConfig, client: LLMClient, pool: WorkerPool, run_dir: Path,
                display: Display, name: str | None = None, variant_names: set[str] | None = None) -> SolveResult:
    """Search until the budget or a cap, then re-verify the winner cold and write best.py and summary.json."""
    store = RunStore(run_dir / STORE_NAME)
    try:
        search = Search(problem, config, client, pool, store, display, name, variant_names)
        store.set_meta("sessions", search.session + 1)
        await search.run()
        best, cold = await cold_check(search)
        summary = write_outputs(run_dir, search, best, cold)
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
                               strict=cfg.strict, fresh_worker=True, **cfg.tolerance_settings())
        verdict = await asyncio.wrap_future(search.pool.submit(request))
        search.store.set_meta(f"cold_check_{entry.attempt_id}", verdict.to_json())
        if verdict.ok:
            return entry, verdict
        search.display.log(search.name, f"attempt {entry.attempt_id} failed the cold re-check: {verdict.status}")
    return None, None


def write_outputs(run_dir: Path, search: Search, best: Entry | None, cold: Verdict | None) -> dict:
    attempts = search.store.attempts()
    statuses: dict[str, int] = {}
    for a in attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    cold_timing = (cold.timing or {}) if cold else {}
    if best:
        speed = cold_timing.get("speedup_vs_eager")
        headline = (f"best: attempt {best.attempt_id} (lane {best.lane}, {best.strategy}), correct on a cold re-check"
                    + (f", {speed:.3g}x eager" if speed else ", not timed (no GPU)"))
        header = (f"# kernelsearch: best kernel for {search.problem.name} - attempt {best.attempt_id}, "
                  f"{cold.device}, {cold.dtype}"
                  + (f", {speed:.3g}x eager PyTorch" if speed else ", correct (not timed: no GPU)") + "\n")
        (run_dir / BEST_NAME).write_text(header + best.code.rstrip() + "\n")
    else:
        headline = "no kernel proven correct" + (f" ({search.fatal})" if search.fatal else "")
    summary = {
        "problem": search.problem.name, "solved": best is not None, "headline": headline,
        "stop_reason": search.stop_reason, "fatal_error": search.fatal,
        "tolerance": search.config.resolved_tolerance().describe(),
        "elapsed_s": round(search.store.meta("elapsed_s", 0.0), 1), "budget_s": search.config.budget_s,
        "sessions": search.store.meta("sessions", 1), "attempts": len(attempts), "statuses": statuses,
        "tokens": {k: sum(getattr(a, k) or 0 for a in attempts)
                   for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens")},
        "model": {"name": search.client.config.model, "base_url": search.client.config.base_url},
        "device": search.pool.info.get("device_name", search.pool.device),
        "best": None if best is None else {
            "attempt": best.attempt_id, "lane": best.lane, "strategy": best.strategy, "found_after_s":
            round(best.finished_s, 1), "search_timing": best.verdict.timing, "cold_check": cold.to_json()},
    }
    (run_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return summary

