"""The commands that run searches (solve, bench): the endpoint check, the verifier pool and the display around a
search, and resuming. Those that read a run directory afterwards (report, retime) are in run_dir_commands.py."""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .config import ConfigError, build_from, check_limits, chosen, parse_duration, parse_prices, read_table
from .exits import EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE, how_stopped
from .llm.client import LLMClient, LLMError, ModelConfig
from .problem import ProblemError, load_problem, parse_overrides
from .run_dir_commands import finish_bench
from .scale import backend_record, describe_backend, open_pool
from .scale.cluster import connect_for
from .search.display import Display
from .search.run_dir import RunDir, Settings
from .search.seed import problem_or_spec, spec_search, unplanted
from .search.solve import solve
from .search.solve_config import JUDGING_FIELDS, SolveConfig
from .search.suite_run import judging_of, load_bench, replay, run_suite, save_bench
from .shrink import fit_interpreter
from .store import StoreError
from .suites import SuiteProblem, load_suite
from .verify import PoolConfig, resolve_device
from .verify.pool.live_pools import Stopped
from .verify.tolerance import check_settings, describe_settings


def _only_budget_on_resume(args) -> None:
    """A resumed run keeps the settings it was started with; silently ignoring a flag would mislead."""
    fixed = ["problem", "suite", "lanes", "language", "dtype", "rules", "tolerance", "atol", "rtol", "strict",
             "max_attempts",
             "max_tokens", "target_speedup", "endpoint", "model", "base_url", "api_key_env", "config", "overrides",
             "out", "shrink"]
    given = [name for name in fixed if getattr(args, name, None) not in (None, [])]
    if given:
        flags = ", ".join("PROBLEM" if n == "problem" else "SUITE" if n == "suite" else
                          "--set" if n == "overrides" else f"--{n.replace('_', '-')}" for n in given)
        raise ConfigError(f"--resume keeps the run's saved settings; only --budget and --device may change "
                          f"(got {flags})")


def _resumed(search, args):
    """The saved search settings with what a resume may change: more time, another device; held to the same
    limits as a new run's (config.build_from checks those)."""
    if args.budget:
        search.budget_s = parse_duration(args.budget)
    if args.device:
        search.device = args.device
    check_limits(search)
    return search


def search_configs(args):
    """(model, search settings, the search settings the user chose) from --config and the flags."""
    model_flags = {"endpoint": args.endpoint, "model": args.model, "base_url": args.base_url,
                   "api_key_env": args.api_key_env}
    search_flags = {"budget_s": parse_duration(args.budget) if args.budget else None, "lanes": args.lanes,
                    "language": args.language, "dtype": args.dtype, "rules": args.rules,
                    "tolerance": args.tolerance, "atol": args.atol, "rtol": args.rtol, "device": args.device,
                    "strict": args.strict,
                    "max_attempts": args.max_attempts, "max_tokens": args.max_tokens,
                    "target_speedup": args.target_speedup, "shrink": args.shrink}
    table = read_table(args.config)
    return (*build_from(table, args.config, model_flags, search_flags), chosen(table, search_flags))


def _start(search, model, ray: str | None = None):
    """The device (with `ray`: the cluster's, not this machine's) and a model client for a search, or a
    ConfigError/LLMError/ClusterError that says what is wrong."""
    if search.shrink not in ("off", "auto"):
        raise ConfigError(f"shrink must be off or auto, got {search.shrink!r}")
    device = resolve_device(search.device) if not ray else _cluster_device(ray, search.device)
    if search.language == "cuda" and device != "cuda":
        raise ConfigError("a CUDA C++ search needs a GPU: without one its candidates can only be compile-checked")
    return device, LLMClient(model)


def _cluster_device(ray: str, requested: str | None) -> str:
    """Connect to the Ray cluster `--ray` names (once per process) and resolve the device there."""
    return connect_for(ray, requested or "auto")


def _search(client, pool_config, run_dir: Path, work, create=None, made_here: bool = False, ray: str | None = None):
    """Check the endpoint, then `create()` the run directory, start the verifier pool and the display, and run
    `await work(pool, display)`. Returns (result, None), or (None, exit code) after a one-line error; finished
    work stays in run_dir, and a directory `made_here` in which nothing was recorded is removed."""
    if client.config.api_key_env:  # whatever the variable is called, candidates never see it
        pool_config = replace(pool_config, hidden_env=(*pool_config.hidden_env, client.config.api_key_env))

    async def main_loop():
        try:
            await client.check()  # an unreachable endpoint or unknown model stops here, before the directory exists
            if create:
                create()
            print(f"run directory: {run_dir} (a stopped run continues with --resume {run_dir})", flush=True)
            with open_pool(pool_config, ray) as pool, Display() as display:
                return await work(pool, display)
        finally:
            await client.close()

    try:
        return asyncio.run(main_loop()), None
    except LLMError as e:
        if made_here:
            RunDir(run_dir).discard_unused()
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return None, EXIT_USAGE
    except (KeyboardInterrupt, Stopped) as e:
        how, code = how_stopped(e)
        print(f"kernelsearch: {how}; finished work is in {run_dir}: continue with --resume {run_dir}",
              file=sys.stderr)
        return None, code


def run_solve(args) -> int:
    run, made_here, spec, seed = None, False, None, None
    try:
        if args.resume:
            _only_budget_on_resume(args)
            run = RunDir(args.resume)
            settings = run.load_settings()
            run.check_readable()
            settings.search = _resumed(settings.search, args)
            seed = unplanted(run)
        else:
            if not args.problem:
                raise ConfigError("give a PROBLEM file, or --resume RUN_DIR")
            model, search, chosen = search_configs(args)
            overrides = parse_overrides(args.overrides)
            stem = Path(args.problem).stem
            run = RunDir(args.out or f"runs/solve-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
            run.new_search()
            made_here = not run.path.exists()
            problem, spec = problem_or_spec(args.problem, overrides)
            settings = Settings(args.problem, overrides, search, model)
        search, model, run_dir = settings.search, settings.model, run.path
        device, client = _start(search, model, args.ray)
        if spec:  # its problem (problem.py) and generated kernel at the shape this device searches
            problem, seed = spec_search(spec, run, settings, device, dtype_given="dtype" in chosen)
        if args.resume:  # a --shrink holds on the CPU only: resumed on a GPU, the search is at the original sizes
            problem = load_problem(settings.problem,
                                   settings.searched_overrides() if device == "cpu" else settings.overrides)
        if device == "cpu" and search.language == "triton":  # too large for the interpreter: before any model call
            problem, changes = fit_interpreter(problem, "off" if args.resume else search.shrink, settings.overrides,
                                               settings.variants())
            if changes:
                settings.shrink = {name: list(pair) for name, pair in changes.items()}
    except (ConfigError, ProblemError, LLMError, OSError, ValueError, StoreError) as e:  # SpecError is a ValueError
        if made_here:  # a spec's problem.py may be there already: no directory is left without a run in it
            run.discard_unused()
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    config = PoolConfig(device=device, compile_timeout_s=search.compile_timeout_s, run_timeout_s=search.run_timeout_s,
                        workers_per_gpu=args.workers_per_gpu)
    async def work(pool, display):
        result = await solve(problem, search, client, pool, run_dir, display, variant_names=settings.variants(),
                             seed=seed)
        if result.summary:  # which backend and which nodes verified (summary.json's `verifier`)
            result.summary["verifier"] = backend_record(pool)
            run.write_summary(result.summary)
        return result

    result, failed = _search(client, config, run_dir, work,
                             create=None if args.resume else lambda: run.save_settings(settings),
                             made_here=made_here, ray=args.ray)
    if failed is not None:
        return failed
    print(f"{result.summary['headline']}\nrun: {run_dir}" + (f"\nkernel: {run.best}" if result.best else ""))
    if result.fatal:
        print(f"kernelsearch: error: {result.fatal} (recorded work is in {run_dir}; continue with --resume {run_dir})",
              file=sys.stderr)
        return EXIT_USAGE
    return EXIT_CORRECT if result.best else EXIT_REJECTED


@dataclass
class ReadyBench:
    """A bench ready to search: its directory, problems and suite, its settings, the device and the model client."""
    run_dir: Path
    problems: list[SuiteProblem]
    suite: dict
    search: SolveConfig
    device: str
    client: LLMClient
    made_here: bool = False  # a new directory that this command creates


def run_bench(args) -> int:
    """Re-verify a bench's best kernels (--replay), or search a suite: a new bench, or one continued (--resume)."""
    try:
        prices = parse_prices(args.price)
        gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
        if gpus and args.ray:
            raise ConfigError("--gpus picks this machine's GPUs; with --ray every GPU of the cluster verifies")
        if args.replay:
            return _replay(args, gpus, prices)
        bench = _resumed_bench(args) if args.resume else _new_bench(args)
    except (ConfigError, ProblemError, LLMError, OSError, ValueError, RuntimeError, StoreError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return _search_bench(args, bench, gpus, prices)


def _replay(args, gpus: list[int] | None, prices) -> int:
    """--replay: a bench's best kernels verified here, no model calls, each under the rules and tolerance it was
    searched under unless --rules/--tolerance/--atol/--rtol say otherwise; then the replay's metrics and report."""
    source = Path(args.replay)
    if not RunDir(source).problems.is_dir():
        raise ConfigError(f"{source} holds no bench run to replay (no {RunDir(source).problems.name}/)")
    run_dir = Path(args.out or f"{source.as_posix().rstrip('/')}-replay-{time.strftime('%Y%m%d-%H%M%S')}")
    given = {k: getattr(args, k) for k in JUDGING_FIELDS if getattr(args, k) is not None}
    saved = load_bench(source)["search"] if RunDir(source).bench.is_file() else {}
    judging = {**judging_of(saved), **given}
    check_settings(judging["tolerance"], judging["atol"], judging["rtol"])
    device = resolve_device(args.device or "auto") if not args.ray else _cluster_device(args.ray, args.device)
    with open_pool(PoolConfig(device=device, gpus=gpus), args.ray) as pool:
        replay(source, run_dir, pool, progress=lambda line: print(line, flush=True), judging=given)
        context = {"replay of": str(source), "device": pool.info.get("device_name", device),
                   "verifier": describe_backend(pool),
                   "torch": pool.info.get("torch", ""), "triton": pool.info.get("triton", ""),
                   "rules": judging["rules"],
                   "tolerance": describe_settings(judging["tolerance"], judging["atol"], judging["rtol"])}
    return finish_bench(run_dir, context, prices)


def _resumed_bench(args) -> ReadyBench:
    """--resume: the bench's saved problems and settings, with a new budget or device at most."""
    _only_budget_on_resume(args)
    run_dir = Path(args.resume)
    if not RunDir(run_dir).bench.is_file():
        raise ConfigError(f"{run_dir} holds no bench to resume (no {RunDir(run_dir).bench.name})")
    RunDir(run_dir).check_readable()  # a damaged problem's store or file stops the resume here, in one line
    saved = load_bench(run_dir)
    problems, suite = saved["problems"], saved["suite"]
    search, model = SolveConfig(**saved["search"]), ModelConfig(**saved["model"])
    search = _resumed(search, args)
    device, client = _start(search, model, args.ray)
    return ReadyBench(run_dir, problems, suite, search, device, client)


def _new_bench(args) -> ReadyBench:
    """A new bench of the suite's problems, its settings saved in bench.json for a --resume."""
    if not args.suite:
        raise ConfigError("give a SUITE (kernelbench, attention or a directory), --resume or --replay")
    model, search, _ = search_configs(args)
    name = Path(args.suite).name if args.suite not in ("kernelbench", "attention") else args.suite
    run_dir = Path(args.out or f"runs/bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    made_here = not run_dir.exists()
    if RunDir(run_dir).bench.exists():
        raise ConfigError(f"{run_dir} already holds a bench: continue it with --resume {run_dir}")
    suite = {"name": args.suite, "level": args.level, "problems": args.problems,
             "kernelbench_dir": args.kernelbench_dir, "spec_dir": args.spec_dir}
    device, client = _start(search, model, args.ray)
    # after the device: the attention suite builds its problems at the device's shapes
    problems = load_suite(args.suite, level=args.level, selection=args.problems, kernelbench_dir=args.kernelbench_dir,
                          spec_dir=args.spec_dir, device=device, work_dir=run_dir / "suite")
    save_bench(run_dir, problems, suite, search, model)
    return ReadyBench(run_dir, problems, suite, search, device, client, made_here)


def _search_bench(args, bench: ReadyBench, gpus: list[int] | None, prices) -> int:
    """Every problem's search, all sharing one verifier pool; then the bench's metrics, results and report."""
    search, client = bench.search, bench.client

    async def work(pool, display):
        concurrent = args.concurrent or 2 * len(pool.workers)  # the GPU verifies while models think
        outcomes = await run_suite(bench.problems, search, client, pool, bench.run_dir, display, concurrent)
        return outcomes, pool.info.get("device_name", bench.device), describe_backend(pool)

    config = PoolConfig(device=bench.device, gpus=gpus, workers_per_gpu=args.workers_per_gpu,
                        compile_timeout_s=search.compile_timeout_s, run_timeout_s=search.run_timeout_s)
    result, failed = _search(client, config, bench.run_dir, work, made_here=bench.made_here, ray=args.ray)
    if failed is not None:
        return failed
    outcomes, device_name, verifier = result
    for key, outcome in outcomes.items():
        print(f"{key}: {outcome}")
    context = {"suite": bench.suite.get("name"), "device": device_name, "verifier": verifier,
               "model": client.config.model, "endpoint": client.config.base_url,
               "budget per problem": f"{search.budget_s:g} s", "lanes": search.lanes, "language": search.language,
               "rules": search.rules, "tolerance": describe_settings(search.tolerance, search.atol, search.rtol)}
    return finish_bench(bench.run_dir, context, prices)
