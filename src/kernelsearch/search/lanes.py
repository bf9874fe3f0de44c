"""The lanes of one problem's search: each asks the model for a kernel, the verifier judges it, and what it saw
steers the lane's next attempt (steer.py); correct kernels go to the archive, which the lanes build on."""
from __future__ import annotations

import asyncio
import contextlib
import time

from ..llm.answer import extract_code
from ..llm.client import LLMClient, LLMError
from ..llm.prompt import Previous, strategies
from ..problem import Problem
from ..store import ELAPSED, RunStore, timing_columns
from ..verify import Verdict, WorkerPool, make_request
from ..verify.verdict import Status
from .archive import Archive, Entry, source_key
from .display import Display
from .problem_profile import ProblemProfile, profile_problem
from .seed import SEED_LANE, SEED_STEP, SEED_STRATEGY, Seed, say_failed
from .solve_config import SolveConfig
from .steer import Lane, original_source, plan_attempt

MAX_FAILED_CALLS_IN_A_ROW = 5  # a sixth failure in a row means the endpoint is down, not busy
PROFILE_KEY = "problem_profile"  # store meta: the problem's profile, traced once per run


class Search:
    """The lanes of one problem. Model calls are I/O and run concurrently; verification queues for the pool.

    Stopping has two stages: at the attempt cap no new attempt starts, and those in flight (their calls count in
    the cap) run to the end; at the budget's end, a token cap, the target or a fatal error, calls still waiting
    for their answer are cancelled. Either way every answer that has arrived is verified and recorded."""

    def __init__(self, problem: Problem, config: SolveConfig, client: LLMClient, pool: WorkerPool, store: RunStore,
                 display: Display, name: str | None = None, variant_names: set[str] | None = None):
        self.variant_names = variant_names  # which size constants the second shape may change (None: all)
        self.problem, self.config, self.client, self.pool, self.store = problem, config, client, pool, store
        self.display, self.name = display, name or problem.name
        self.archive = Archive()
        self.lanes = [Lane(i) for i in range(config.lanes)]
        self.session = store.meta("sessions", 0)
        self.spent_before = store.meta(ELAPSED, 0.0)
        self.began = time.monotonic()
        self.closing = asyncio.Event()  # no new attempts
        self.stop = asyncio.Event()  # and no more waiting for answers
        self.stop_reason = ""
        self.fatal: str | None = None
        self.failed_calls = 0
        saved = store.meta(PROFILE_KEY)
        self.profile: ProblemProfile | None = ProblemProfile.from_json(saved) if saved else None
        self.profiling = asyncio.Lock()
        self.taken: dict[int, set[str]] = {}  # step -> the strategies lanes took at it (steer.plan_attempt)
        self.verdicts: dict[str, tuple[int, Verdict | asyncio.Future]] = {}  # source_key -> (attempt, its verdict)
        self.restore()

    # ---- state ---------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.spent_before + time.monotonic() - self.began

    def restore(self) -> None:
        """After --resume: the archive, the verdicts by source and each lane's last attempt come back from the
        store."""
        self.store.abandon_pending()
        for a in self.store.attempts():
            verdict = Verdict.from_json(a.verdict) if a.verdict else None
            if a.code and verdict is not None and a.status != Status.DUPLICATE:
                self.verdicts.setdefault(source_key(a.code), (a.id, verdict))
            if a.lane >= len(self.lanes):
                continue
            lane = self.lanes[a.lane]
            lane.step = max(lane.step, a.step)
            if a.strategy in _optimizations():
                lane.tried[a.strategy] += 1
            self.taken.setdefault(a.step, set()).add(a.strategy)
            if a.status in (Status.LLM_ERROR, Status.CANCELLED) or (a.strategy == SEED_STRATEGY and not a.correct):
                continue  # a failed seed is not the lane's to fix (plant)
            duplicate = a.status == Status.DUPLICATE and verdict is not None and verdict.ok
            lane.previous = Previous(a.strategy, a.code, verdict, problem=a.note or "", attempt_id=a.id,
                                     status=Status.DUPLICATE if duplicate else "")
            lane.failures = 0 if a.correct else lane.failures + 1
            if a.correct and verdict is not None:
                lane.latest = Entry(a.id, a.lane, a.strategy, a.code, verdict, a.finished_s or a.started_s)
                self.archive.add(lane.latest)

    def totals(self) -> tuple[int, int]:
        # attempts in flight count, so that lanes starting together cannot overshoot the attempt cap; a seed is no
        # model attempt
        rows = self.store.db.execute("SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0) FROM attempts WHERE "
                                     "status != ? AND strategy != ?", (Status.CANCELLED, SEED_STRATEGY)).fetchone()
        return rows[0], rows[1]

    def check_caps(self) -> None:
        cfg = self.config
        attempts, tokens = self.totals()
        best = self.archive.best()
        if self.elapsed() >= cfg.budget_s:
            self.halt("budget spent")
        elif cfg.max_attempts is not None and attempts >= cfg.max_attempts:
            self.halt(f"attempt cap reached ({attempts})", finish=True)
        elif cfg.max_tokens is not None and tokens >= cfg.max_tokens:
            self.halt(f"token cap reached ({tokens} completion tokens)")
        elif cfg.target_speedup and best and (best.speedup or 0) >= cfg.target_speedup:
            self.halt(f"target reached ({best.speedup:.3g}x eager >= {cfg.target_speedup:g}x)")

    def halt(self, reason: str, fatal: bool = False, finish: bool = False) -> None:
        """Stop starting attempts; unless `finish`, also stop waiting for the answers of those in flight."""
        if not self.closing.is_set():
            self.stop_reason = reason
            self.closing.set()
        if fatal and self.fatal is None:  # an error after a cap stopped the search is still told
            self.fatal = reason
        if not finish:
            self.stop.set()

    async def problem_profile(self) -> ProblemProfile:
        """The problem's profile (steer.py, strategies.py): traced once per run, kept in the store."""
        async with self.profiling:  # lanes start together: one trace
            if self.profile is None:
                self.profile = await profile_problem(original_source(self), self.config.dtype)
                self.store.set_meta(PROFILE_KEY, self.profile.to_json())
        return self.profile

    # ---- the loop ------------------------------------------------------------------------------------------
    async def run(self, seed: Seed | None = None) -> None:
        """The lanes until a stop; a `seed` is verified first, on the budget, before any model call."""
        # Traced before the budget's clock starts, like the workers' start-up: its seconds are torch's import.
        await self.problem_profile()
        self.began = time.monotonic()
        remaining = self.config.budget_s - self.elapsed()
        self.display.start(self.name, self.config.budget_s, max(0.0, remaining), len(self.lanes))
        self.check_caps()
        if self.closing.is_set():
            return
        if seed is not None:
            await self.plant(seed)
            remaining = self.config.budget_s - self.elapsed()
        lanes = [asyncio.create_task(self.lane_loop(lane)) for lane in self.lanes]
        every = asyncio.gather(*lanes, return_exceptions=True)
        try:
            done, _ = await asyncio.wait([every], timeout=remaining)
            if not done:  # the deadline: calls in flight are cut off, answers that arrived are still verified
                self.halt("budget spent")
            results = await every
        finally:  # on Ctrl-C too (the search is cancelled): each lane records its attempt in flight as cancelled
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        if errors:  # a bug of ours, not the model's: say so rather than hide it behind "budget spent"
            self.halt(f"internal error: {type(errors[0]).__name__}: {errors[0]}", fatal=True)
        self.halt("budget spent")  # only says so when nothing else stopped it
        self.store.set_meta(ELAPSED, round(self.elapsed(), 3))

    async def plant(self, seed: Seed) -> None:
        """Verify the seed as any answer is verified and record it; correct, it is the kernel the lanes build on
        (the best so far), else one line says so and the lanes start from nothing. A new run plants its seed;
        --resume plants it only if no verification of it finished (seed.unplanted)."""
        lane = self.lanes[SEED_LANE]
        attempt_id = self.store.begin(lane=SEED_LANE, step=SEED_STEP, strategy=SEED_STRATEGY, base_id=None,
                                      session=self.session, started_s=round(self.elapsed(), 3), prompt=seed.origin)
        self.store.update(attempt_id, code=seed.code, note=seed.origin)
        try:
            with self.closed_whatever_happens(lane, attempt_id, SEED_STEP, SEED_STRATEGY):
                verdict = await self.verify(lane, attempt_id, SEED_STEP, SEED_STRATEGY, seed.code)
        except Exception as e:  # a bug of ours: the search stops saying why, as run() does for the lanes' attempts
            self.halt(f"internal error: {type(e).__name__}: {e}", fatal=True)
            return
        if not verdict.ok and verdict.status != Status.PROBLEM_ERROR:  # that one stops the search, saying why
            # the lane does not fix the generator's kernel: it starts as every other lane does
            lane.previous, lane.failures = None, 0
            say_failed(verdict)

    async def lane_loop(self, lane: Lane) -> None:
        while True:
            self.check_caps()
            if self.closing.is_set():
                return
            await self.attempt(lane)

    async def attempt(self, lane: Lane) -> None:
        await self.problem_profile()
        step = lane.step + 1
        plan = plan_attempt(self, lane, step)
        if plan.restarts:  # what the plan changes is applied here: steering only reads the search
            lane.failures = 0
        if plan.takes_strategy:
            self.taken.setdefault(step, set()).add(plan.strategy.name)
        if plan.strategy.name in _optimizations():  # the rotation moves on whatever the outcome
            lane.tried[plan.strategy.name] += 1
        lane.step = step
        attempt_id = self.store.begin(lane=lane.index, step=step, strategy=plan.strategy.name, base_id=plan.base_id,
                                      session=self.session, started_s=round(self.elapsed(), 3), prompt=plan.prompt)
        self.display.attempt_started(self.name, lane.index, step, plan.strategy.name)
        with self.closed_whatever_happens(lane, attempt_id, step, plan.strategy.name):  # run() reports an error
            await self.ask_and_verify(lane, attempt_id, step, plan.strategy.name, plan.prompt)

    @contextlib.contextmanager
    def closed_whatever_happens(self, lane: Lane, attempt_id: int, step: int, strategy: str):
        """An attempt is closed, with the budget it spent, even when a stop or an error of ours (a bug, not the
        model's) ends it: `cancelled`, saying which. The stop or the error then goes on up."""
        try:
            yield
        except asyncio.CancelledError:
            self.finish(lane, attempt_id, step, strategy, Status.CANCELLED, "stopped")
            raise
        except Exception as e:
            self.finish(lane, attempt_id, step, strategy, Status.CANCELLED, f"internal error: {e}",
                        note=f"internal error: {type(e).__name__}: {e}")
            raise

    def finish(self, lane: Lane, attempt_id: int, step: int, strategy: str, status: str, detail: str,
               **fields) -> None:
        """Every attempt ends here, whatever its outcome, with the budget it spent."""
        self.store.update(attempt_id, status=status, finished_s=round(self.elapsed(), 3), **fields)
        self.display.attempt_finished(self.name, lane.index, step, strategy, status, detail)

    async def ask(self, lane: Lane, step: int, prompt: str):
        """The model's completion, or None when the search stopped before the answer arrived."""
        call = asyncio.ensure_future(self.client.complete(
            prompt, on_progress=lambda received: self.display.receiving(self.name, lane.index, step, received)))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait([call, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not call.done():  # the stop came first (or the search itself was cancelled)
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
        return None if call.cancelled() else call.result()

    async def ask_and_verify(self, lane: Lane, attempt_id: int, step: int, strategy: str, prompt: str) -> None:
        try:
            completion = await self.ask(lane, step, prompt)
        except LLMError as e:
            self.finish(lane, attempt_id, step, strategy, Status.LLM_ERROR, str(e), note=str(e))
            self.failed_calls += 1
            if e.fatal or self.failed_calls > MAX_FAILED_CALLS_IN_A_ROW:
                self.halt(str(e), fatal=True)
            else:  # the SDK already retried; give it air (but not past a stop)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), min(60.0, 2.0 ** self.failed_calls))
            return
        if completion is None:
            self.finish(lane, attempt_id, step, strategy, Status.CANCELLED,
                        f"stopped before the answer arrived ({self.stop_reason})")
            return
        self.failed_calls = 0
        extracted = extract_code(completion.answer, completion.truncated)
        self.store.update(attempt_id, reasoning=completion.reasoning, answer=completion.answer, code=extracted.code,
                          note=extracted.note, prompt_tokens=completion.prompt_tokens,
                          completion_tokens=completion.completion_tokens,
                          reasoning_tokens=completion.reasoning_tokens, llm_s=completion.elapsed_s)
        if extracted.code is None:
            lane.previous = Previous(strategy, None, None, problem=f"No kernel was found in your answer: "
                                     f"{extracted.note}. Answer with one complete ```python block.",
                                     attempt_id=attempt_id)
            lane.failures += 1
            self.finish(lane, attempt_id, step, strategy, Status.NO_CODE, extracted.note)
            return
        await self.verify(lane, attempt_id, step, strategy, extracted.code)

    async def verify(self, lane: Lane, attempt_id: int, step: int, strategy: str, code: str) -> Verdict:
        """Verify an attempt's code (once per source: seen before, it is a duplicate), record the verdict and
        what the lane saw, and keep a correct kernel in the archive."""
        cfg = self.config
        key = source_key(code)
        if key in self.verdicts:
            return await self.reuse(lane, attempt_id, step, strategy, code, key)
        self.display.verifying(self.name, lane.index, step)
        request = make_request(self.problem, code, f"attempt{attempt_id}", self.variant_names,
                               dtype=cfg.dtype, trials=cfg.trials, seed=cfg.seed, timing=True, strict=cfg.strict,
                               **cfg.judging())
        verifying = asyncio.ensure_future(asyncio.wrap_future(self.pool.submit(request)))
        self.verdicts[key] = (attempt_id, verifying)  # a lane that answers the same code meanwhile waits for it
        verdict = await verifying
        self.verdicts[key] = (attempt_id, verdict)
        timed = verdict.timed
        lane.previous = Previous(strategy, code, verdict, attempt_id=attempt_id)
        detail = verdict.message.splitlines()[0][:120] if verdict.message else ""
        if verdict.ok:
            lane.failures = 0
            lane.latest = Entry(attempt_id, lane.index, strategy, code, verdict, self.elapsed())
            detail = lane.latest.summary()
            if self.archive.add(lane.latest):  # untimed (no GPU), the first correct kernel stays: none ranks higher
                self.display.new_best(self.name, lane.latest.summary(),
                                      label="new best" if timed else "first correct kernel")
        else:
            lane.failures += 1
        self.finish(lane, attempt_id, step, strategy, verdict.status, detail, verdict=verdict.to_json(),
                    **timing_columns(timed), verify_s=verdict.elapsed_s)
        if verdict.status == Status.PROBLEM_ERROR:  # no kernel can pass a problem that cannot run here
            self.halt(f"the problem cannot be verified here: {verdict.message.splitlines()[0]}")
        return verdict

    async def reuse(self, lane: Lane, attempt_id: int, step: int, strategy: str, code: str, key: str) -> Verdict:
        """A kernel verified before (the same source up to comments and whitespace) is not verified again: the
        attempt is recorded as a duplicate with the earlier verdict."""
        earlier, verdict = self.verdicts[key]
        if isinstance(verdict, asyncio.Future):  # still being verified for the earlier attempt
            verdict = await asyncio.shield(verdict)
        note = (f"Your answer is the same kernel as attempt {earlier} (comments and whitespace aside): it was not "
                f"verified again; the verdict above is attempt {earlier}'s.")
        lane.previous = Previous(strategy, code, verdict, problem=note, attempt_id=attempt_id,
                                 status=Status.DUPLICATE if verdict.ok else "")
        lane.failures += 1
        self.finish(lane, attempt_id, step, strategy, Status.DUPLICATE, f"same kernel as attempt {earlier}",
                    verdict=verdict.to_json(), note=f"duplicate of attempt {earlier}")
        return verdict


def _optimizations() -> set[str]:
    return {name for name, s in strategies().items() if Status.CORRECT in s.after}
