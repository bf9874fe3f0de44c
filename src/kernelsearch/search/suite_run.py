"""A whole suite: each problem gets its own search, all sharing this machine's verifier workers (`bench`)."""
from __future__ import annotations

import asyncio
import json
import shutil
import traceback
from dataclasses import asdict, fields, replace
from pathlib import Path

from ..llm.client import LLMClient, LLMError
from ..problem import ProblemError, load_problem
from ..shrink import as_overrides, fit_interpreter
from ..suites import SuiteProblem
from ..verify import WorkerPool, make_request
from ..verify.verdict import Status, Timing
from .display import Display
from .run_dir import RunDir
from .solve import solve
from .solve_config import JUDGING_FIELDS, SolveConfig


def save_bench(run_dir: Path, problems: list[SuiteProblem], suite: dict, search: SolveConfig, model) -> None:
    """The problem list and settings, so that --resume runs the same bench (API keys are never written)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"suite": suite, "search": asdict(search), "model": asdict(model.resolved()) if model else None,
            "problems": [{**asdict(p), "path": str(p.path)} for p in problems]}
    RunDir(run_dir).bench.write_text(json.dumps(data, indent=2) + "\n")


def load_bench(run_dir: Path) -> dict:
    data = RunDir(run_dir).read_bench()
    data["problems"] = [SuiteProblem(**{**p, "path": Path(p["path"])}) for p in data["problems"]]
    return data


async def run_suite(problems: list[SuiteProblem], search: SolveConfig, client: LLMClient, pool: WorkerPool,
                    run_dir: Path, display: Display, concurrent: int) -> dict[str, str]:
    """Solve every problem not finished yet; a problem that fails (even by crashing its worker) does not stop the
    others. Returns each problem's outcome: its summary headline, `skipped (finished)` or the error."""
    slots = asyncio.Semaphore(concurrent)
    stop = asyncio.Event()  # a fatal model error (bad key, endpoint down) ends the whole bench
    outcomes: dict[str, str] = {}

    async def one(problem: SuiteProblem) -> None:
        run = RunDir(run_dir).problem(problem.key)
        out = run.path
        if _finished(run):
            outcomes[problem.key] = "skipped (finished)"
            return
        async with slots:
            if stop.is_set():
                outcomes[problem.key] = "not run (the bench stopped)"
                return
            try:
                out.mkdir(parents=True, exist_ok=True)
                if not run.problem_file.exists():  # keep the exact text solved, for report, --replay and retime
                    shutil.copyfile(problem.path, run.problem_file)
                variant = set(problem.variant_names) if problem.variant_names else None
                loaded = _sized(run, search.shrink, pool.device, variant)
                loaded.name = problem.key
                config = replace(search, dtype=problem.dtype or search.dtype)
                result = await solve(loaded, config, client, pool, out, display, problem.key, variant)
                outcomes[problem.key] = result.summary["headline"]
                if result.fatal:  # a bad key or a dead endpoint fails every problem alike
                    stop.set()
            except (ProblemError, OSError) as e:
                outcomes[problem.key] = _failed(out, f"problem error: {e}")
            except LLMError as e:
                outcomes[problem.key] = _failed(out, str(e))
                stop.set()
            except Exception as e:  # our bug: record it with the traceback and go on with the others
                outcomes[problem.key] = _failed(out, f"internal error: {type(e).__name__}: {e}",
                                                traceback.format_exc())

    await asyncio.gather(*(one(p) for p in problems))
    return outcomes


def _sized(run: RunDir, shrink: str, device: str, variant: set[str] | None):
    """The problem at the sizes its search runs at: on a GPU its own; on the CPU those a --shrink recorded before,
    or its own checked against the interpreter's limit (and scaled down with --shrink auto) before its first model
    call."""
    problem = load_problem(run.problem_file)
    if device != "cpu":
        return problem
    recorded = run.shrink()
    if recorded:
        return load_problem(run.problem_file, as_overrides(recorded))
    problem, changes = fit_interpreter(problem, shrink, {}, variant)
    if changes:
        run.record_shrink(changes)
    return problem


def _finished(run: RunDir) -> bool:
    """Searched to the end; a search cut short by a fatal model error runs again on --resume."""
    summary = run.read_summary()
    return summary is not None and not summary.get("fatal_error")


def _failed(out: Path, message: str, detail: str = "") -> str:
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).error.write_text(message + ("\n\n" + detail if detail else "") + "\n")
    return message


def replay(source_run: Path, out_run: Path, pool: WorkerPool, trials: int = 5, seed: int = 4242,
           progress=print, judging: dict | None = None) -> dict[str, dict]:
    """Re-verify an earlier run's best kernels on this machine (no model calls): each problem's verdict goes to
    `replay.json` beside a copy of its problem and kernel. `judging` (of {rules, tolerance, atol, rtol}) replaces
    the settings the run was searched under."""
    verdicts = {}
    found_under = _search_settings(source_run)
    for searched in RunDir(source_run).problem_dirs():
        if not searched.problem_file.is_file():
            continue
        key = searched.path.name
        out = RunDir(out_run).problem(key)
        out.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(searched.problem_file, out.problem_file)
        if searched.summary.exists():
            shutil.copyfile(searched.summary, out.search_summary)
        if not searched.best.exists():
            verdicts[key] = {"status": "no_kernel", "message": "the run found no correct kernel"}
        else:
            shutil.copyfile(searched.best, out.best)
            settings = {**found_under.get(key, {}), **(judging or {})}
            try:
                problem = load_problem(out.problem_file)
            except ProblemError as e:
                verdicts[key] = {"status": Status.PROBLEM_ERROR, "message": str(e)}
            else:
                problem.name = key
                variant = set(settings["variant_names"]) if settings.get("variant_names") else None
                request = make_request(problem, out.best.read_text(), "best", variant,
                                       dtype=settings.get("dtype", "fp32"), trials=trials, seed=seed, timing=True,
                                       strict=settings.get("strict", False),
                                       **{k: settings[k] for k in JUDGING_FIELDS if k in settings})
                verdicts[key] = pool.verify(request).to_json()
        out.replay.write_text(json.dumps(verdicts[key], indent=2) + "\n")
        progress(f"{key}: {verdicts[key]['status']}" + _speed(verdicts[key]))
    return verdicts


def _search_settings(run: Path) -> dict[str, dict]:
    """Per problem key: the dtype, strictness and second-shape rule its kernel was found under (from the bench
    that ran it, read once)."""
    if not RunDir(run).bench.exists():
        return {}
    saved = load_bench(run)
    search = saved["search"]
    judging = judging_of(search)
    return {p.key: {"dtype": p.dtype or search["dtype"], "strict": search["strict"],
                    "variant_names": p.variant_names, **judging} for p in saved["problems"]}


def judging_of(search: dict) -> dict:
    """The settings a kernel was judged under ({rules, tolerance, atol, rtol}) in a saved search configuration (the
    defaults for runs saved before there were any)."""
    defaults = {f.name: f.default for f in fields(SolveConfig) if f.name in JUDGING_FIELDS}
    return {name: search.get(name, default) for name, default in defaults.items()}


def _speed(verdict: dict) -> str:
    timed = Timing.of(verdict.get("timing"))
    return f", {timed.short()}" if timed else ""
