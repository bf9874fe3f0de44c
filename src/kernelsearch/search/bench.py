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
from ..suites import SuiteProblem
from ..verify import WorkerPool, make_request
from .display import Display
from .solve import SUMMARY_NAME, TOLERANCE_FIELDS, SolveConfig, solve

BENCH_NAME, PROBLEMS_DIR, PROBLEM_FILE, ERROR_FILE, REPLAY_NAME = (
    "bench.json", "problems", "problem.py", "error.txt", "replay.json")


def problem_dir(run_dir: Path, problem: SuiteProblem) -> Path:
    return run_dir / PROBLEMS_DIR / problem.key


def save_bench(run_dir: Path, problems: list[SuiteProblem], suite: dict, search: SolveConfig, model) -> None:
    """The problem list and settings, so that --resume runs the same bench (API keys are never written)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"suite": suite, "search": asdict(search), "model": asdict(model.resolved()) if model else None,
            "problems": [{**asdict(p), "path": str(p.path)} for p in problems]}
    (run_dir / BENCH_NAME).write_text(json.dumps(data, indent=2) + "\n")


def load_bench(run_dir: Path) -> dict:
    data = json.loads((run_dir / BENCH_NAME).read_text())
    data["problems"] = [SuiteProblem(**{**p, "path": Path(p["path"])}) for p in data["problems"]]
    return data


async def run_bench(problems: list[SuiteProblem], search: SolveConfig, client: LLMClient, pool: WorkerPool,
                    run_dir: Path, display: Display, concurrent: int) -> dict[str, str]:
    """Solve every problem not finished yet; a problem that fails (even by crashing its worker) does not stop the
    others. Returns each problem's outcome: its summary headline, `skipped (finished)` or the error."""
    slots = asyncio.Semaphore(concurrent)
    stop = asyncio.Event()  # a fatal model error (bad key, endpoint down) ends the whole bench
    outcomes: dict[str, str] = {}

    async def one(problem: SuiteProblem) -> None:
        out = problem_dir(run_dir, problem)
        if _finished(out):
            outcomes[problem.key] = "skipped (finished)"
            return
        async with slots:
            if stop.is_set():
                outcomes[problem.key] = "not run (the bench stopped)"
                return
            try:
                out.mkdir(parents=True, exist_ok=True)
                if not (out / PROBLEM_FILE).exists():  # keep the exact text solved, for report and --replay
                    shutil.copyfile(problem.path, out / PROBLEM_FILE)
                loaded = load_problem(out / PROBLEM_FILE)
                loaded.name = problem.key
                config = replace(search, dtype=problem.dtype or search.dtype)
                variant = set(problem.variant_names) if problem.variant_names else None
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


def _finished(out: Path) -> bool:
    """Searched to the end; a search cut short by a fatal model error runs again on --resume."""
    summary = out / SUMMARY_NAME
    return summary.exists() and not json.loads(summary.read_text()).get("fatal_error")


def _failed(out: Path, message: str, detail: str = "") -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / ERROR_FILE).write_text(message + ("\n\n" + detail if detail else "") + "\n")
    return message


def replay(source_run: Path, out_run: Path, pool: WorkerPool, trials: int = 5, seed: int = 4242,
           progress=print, tolerance: dict | None = None) -> dict[str, dict]:
    """Re-verify an earlier run's best kernels on this machine (no model calls): each problem's verdict goes to
    `replay.json` beside a copy of its problem and kernel. `tolerance` ({tolerance, atol, rtol}) replaces the
    tolerance the run was searched under."""
    verdicts = {}
    found_under = _search_settings(source_run)
    for problem_path in sorted((source_run / PROBLEMS_DIR).glob(f"*/{PROBLEM_FILE}")):
        key = problem_path.parent.name
        best = problem_path.parent / "best.py"
        out = out_run / PROBLEMS_DIR / key
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(problem_path, out / PROBLEM_FILE)
        summary_path = problem_path.parent / SUMMARY_NAME
        if summary_path.exists():
            shutil.copyfile(summary_path, out / "search_summary.json")
        if not best.exists():
            verdicts[key] = {"status": "no_kernel", "message": "the run found no correct kernel"}
        else:
            shutil.copyfile(best, out / "best.py")
            settings = {**found_under.get(key, {}), **(tolerance or {})}
            try:
                problem = load_problem(out / PROBLEM_FILE)
            except ProblemError as e:
                verdicts[key] = {"status": "problem_error", "message": str(e)}
            else:
                problem.name = key
                variant = set(settings["variant_names"]) if settings.get("variant_names") else None
                request = make_request(problem, best.read_text(), "best", variant,
                                       dtype=settings.get("dtype", "fp32"), trials=trials, seed=seed, timing=True,
                                       strict=settings.get("strict", False),
                                       **{k: settings[k] for k in TOLERANCE_FIELDS if k in settings})
                verdicts[key] = pool.verify(request).to_json()
        (out / REPLAY_NAME).write_text(json.dumps(verdicts[key], indent=2) + "\n")
        progress(f"{key}: {verdicts[key]['status']}" + _speed(verdicts[key]))
    return verdicts


def _search_settings(run: Path) -> dict[str, dict]:
    """Per problem key: the dtype, strictness and second-shape rule its kernel was found under (from the bench
    that ran it, read once)."""
    if not (run / BENCH_NAME).exists():
        return {}
    saved = load_bench(run)
    search = saved["search"]
    tolerance = tolerance_of(search)
    return {p.key: {"dtype": p.dtype or search["dtype"], "strict": search["strict"],
                    "variant_names": p.variant_names, **tolerance} for p in saved["problems"]}


def tolerance_of(search: dict) -> dict:
    """The tolerance settings ({tolerance, atol, rtol}) of a saved search configuration (the defaults for runs
    saved before there were any)."""
    defaults = {f.name: f.default for f in fields(SolveConfig) if f.name in TOLERANCE_FIELDS}
    return {name: search.get(name, default) for name, default in defaults.items()}


def _speed(verdict: dict) -> str:
    timing = verdict.get("timing") or {}
    if "speedup_vs_eager" not in timing:
        return ""
    text = f", {timing['speedup_vs_eager']:.3g}x eager"
    if "speedup_vs_compile" in timing:
        text += f", {timing['speedup_vs_compile']:.3g}x torch.compile"
    return text
