"""The kernelsearch command line; each command is a thin layer over the package."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = {  # what each command's --help says about its exit status
    "verify": "0 correct; 1 any other verdict; 2 bad usage, or the problem's limit (problem_error)",
    "attention": "0 every shape verified correct; 1 otherwise; 2 bad usage (a bad spec)",
    "solve": "0 a correct kernel was found; 1 none; 2 bad usage, or the model endpoint failed",
    "bench": "0 the bench ran; 2 bad usage, or the model endpoint failed",
    "report": "0 written; 2 bad usage (no run there, a damaged run)",
    "mcp": "0 the client closed the session; 2 bad usage (the mcp extra is not installed)",
}
STOPPED = "130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (its verifier workers stop too)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2, as every other error of ours."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"kernelsearch: error: {message} (see {self.prog} --help)\n")


def at_least_one(text: str) -> int:
    """The type of every count (--trials, --lanes, --max-attempts, ...): the same limit, refused the same way."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _document(commands) -> None:
    """Each option's default in its help line, and the exit codes under each command's help."""
    for name, sub in commands.choices.items():
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        sub.epilog = f"exit codes: {EXIT_CODES.get(name, '0 ok; 2 bad usage')}; {STOPPED}"
        for action in sub._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS and "--help" not in action.option_strings:
                help_text = action.help or ""
                if "default" in help_text:
                    continue
                default = action.default
                shown = "off" if default is False else "none" if default in (None, []) else default
                action.help = f"{help_text} (default {shown})".strip()


def main(argv: list[str] | None = None) -> None:
    package = __import__("kernelsearch")
    parser = _Parser(prog="kernelsearch", description=package.__doc__)
    parser.add_argument("--version", action="version", version=f"kernelsearch {package.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="verify a candidate kernel against a KernelBench problem")
    verify.add_argument("problem", help="KernelBench-format problem file (Model, get_inputs, get_init_inputs)")
    verify.add_argument("candidate", help="file defining ModelNew (Triton or CUDA via load_inline)")
    verify.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    verify.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    add_tolerance_options(verify, from_config=False)
    verify.add_argument("--trials", type=at_least_one, default=5, help="trials with fresh inputs")
    verify.add_argument("--seed", type=int, default=42, help="seed of the parameters and of trial 0's inputs")
    verify.add_argument("--set", dest="overrides", action="append", metavar="NAME=VALUE",
                        help="change a top-level size constant of the problem (repeatable)")
    verify.add_argument("--no-timing", action="store_true")
    verify.add_argument("--strict", action="store_true", help="reject candidates that keep compute ops in PyTorch")
    verify.add_argument("--compile-timeout", type=positive, default=300.0, metavar="S",
                        help="limit for importing and building the candidate, in seconds")
    verify.add_argument("--run-timeout", type=positive, default=300.0, metavar="S",
                        help="limit for the trials, checks and timing, in seconds")
    verify.add_argument("--json", action="store_true", help="print one JSON verdict")

    attention = commands.add_parser("attention", help="turn a FlexAttention-style score_mod/mask_mod spec into a "
                                    "verified, fused Triton kernel (no model, no API key)")
    attention.add_argument("spec", help="Python file with score_mod and/or mask_mod, SHAPES and TEST_SHAPES")
    attention.add_argument("--out", default="runs/attention", help="directory for the kernel and its problems")
    attention.add_argument("--tune", action="store_true", help="search block sizes, warps and stages (GPU)")
    attention.add_argument("--bench", action="store_true", help="time against FlexAttention and SDPA (GPU)")
    attention.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    attention.add_argument("--trials", type=at_least_one, default=None, help="verification trials per shape")
    attention.add_argument("--shape", type=int, action="append", metavar="I",
                           help="only the I-th entry of the spec's shapes (repeatable)")
    attention.add_argument("--flex-autotune", action="store_true",
                           help="with --bench: also FlexAttention under max-autotune-no-cudagraphs (minutes per shape)")

    solve = commands.add_parser("solve", help="search for a fast, verified kernel with an LLM in the closed loop")
    solve.add_argument("problem", nargs="?", help="KernelBench-format problem file (not needed with --resume)")
    add_search_options(solve)
    solve.add_argument("--set", dest="overrides", action="append", metavar="NAME=VALUE",
                       help="change a top-level size constant of the problem (repeatable)")
    solve.add_argument("--out", help="run directory (default runs/solve-<problem>-<time>)")
    solve.add_argument("--resume", metavar="RUN_DIR", help="continue a run that was stopped or killed")

    bench = commands.add_parser("bench", help="run the closed loop over a suite; metrics, results.csv, report")
    bench.add_argument("suite", nargs="?", help="kernelbench, attention, or a directory of problem files")
    bench.add_argument("--level", type=int, default=1, choices=[1, 2, 3, 4], help="KernelBench level")
    bench.add_argument("--problems", metavar="1-20,37", help="KernelBench ids (positions for other suites)")
    bench.add_argument("--kernelbench-dir", metavar="DIR", help="a KernelBench checkout (else its HF dataset)")
    bench.add_argument("--spec-dir", metavar="DIR", help="attention specs (default examples/attention)")
    bench.add_argument("--gpus", metavar="0,1,...", help="GPUs to verify on, one worker each (default all)")
    bench.add_argument("--concurrent", type=at_least_one, help="problems searched at once (default 2 per worker)")
    add_search_options(bench)
    bench.add_argument("--price", metavar="IN,OUT", help="dollars per million input and output tokens, for cost")
    bench.add_argument("--out", help="run directory (default runs/bench-<suite>-<time>)")
    bench.add_argument("--resume", metavar="RUN_DIR", help="continue a bench: finished problems are skipped")
    bench.add_argument("--replay", metavar="RUN_DIR", help="re-verify a run's best kernels here, no model calls")

    report = commands.add_parser("report", help="write RUN_DIR/report.html (metrics, plots, kernels)")
    report.add_argument("run_dir")
    report.add_argument("--price", metavar="IN,OUT", help="dollars per million input and output tokens")
    report.add_argument("--open", action="store_true", help="open the report in a browser")

    mcp = commands.add_parser("mcp", help="serve the verifier and the attention generator to coding agents over the "
                              "Model Context Protocol (stdio); needs pip install 'kernelsearch[mcp]'")
    mcp.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                     help="where candidates run (default auto: cuda when a GPU is visible)")
    mcp.add_argument("--gpus", metavar="0,1,...", help="GPUs to verify on, one worker each (default all)")
    mcp.add_argument("--timeout", type=float, default=600.0, metavar="S",
                     help="the longest one tool call may take, in seconds (default 600)")

    _document(commands)
    args = parser.parse_args(argv)
    handlers = {"attention": run_attention, "solve": run_solve, "bench": run_bench, "report": run_report,
                "verify": run_verify, "mcp": run_mcp}
    from .verify.live_pools import Stopped

    try:
        code = handlers[args.command](args)
    except (KeyboardInterrupt, Stopped) as e:  # the verifier's workers are gone already (verify.live_pools)
        how, code = _how_stopped(e)
        print(f"kernelsearch: {how}", file=sys.stderr)
    sys.exit(code)


def _how_stopped(e: BaseException) -> tuple[str, int]:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM/SIGHUP (Stopped): what to say, and the conventional exit code."""
    name = getattr(e, "signal_name", None)
    return (f"stopped by {name}", e.code) if name else ("interrupted", 130)


def add_search_options(p) -> None:
    """The model and search flags shared by `solve` and `bench`; left unset, the config file or defaults decide."""
    p.add_argument("--budget", help="wall-clock budget per problem: seconds or minutes, like 90s or 15m "
                   "(default 15m)")
    p.add_argument("--lanes", type=at_least_one, help="concurrent refinement chains (default 4)")
    p.add_argument("--language", choices=["triton", "cuda"])
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    add_tolerance_options(p, from_config=True)
    p.add_argument("--device", choices=["auto", "cuda", "cpu"])
    p.add_argument("--strict", action="store_true", default=None, help="reject kernels that keep compute in PyTorch")
    p.add_argument("--max-attempts", type=at_least_one, help="stop after this many attempts")
    p.add_argument("--max-tokens", type=at_least_one, help="stop after this many completion tokens")
    p.add_argument("--target-speedup", type=positive, help="stop once the best kernel is this much faster than eager")
    p.add_argument("--endpoint", help="a preset: nim, deepseek, openrouter, openai, vllm, sglang, ollama "
                   "(default nim)")
    p.add_argument("--model", help="model id (default: the preset's DeepSeek-R1)")
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    p.add_argument("--config", metavar="FILE.toml", help="[model] and [search] settings; flags override it")


def add_tolerance_options(p, from_config: bool) -> None:
    """--tolerance, --atol, --rtol. For solve and bench (`from_config`) they stay None unless given, so that a
    config file can set them; checked in config.build (verify: in run_verify)."""
    from .verify.tolerance import DEFAULT_PROFILE, PROFILES, profile_values

    profiles = "; ".join(f"{name}: {profile_values(name)}" for name in PROFILES)
    p.add_argument("--tolerance", default=None if from_config else DEFAULT_PROFILE, metavar="PROFILE",
                   help=f"per element |out - ref| <= atol + rtol*|ref|, atol = rtol from the profile ({profiles}; "
                   f"kernelbench-v0 is what the published results used) (default {DEFAULT_PROFILE})")
    p.add_argument("--atol", type=float, help="absolute tolerance in place of the profile's (default: the profile's)")
    p.add_argument("--rtol", type=float, help="relative tolerance in place of the profile's (default: the profile's)")


def _only_budget_on_resume(args) -> None:
    """A resumed run keeps the settings it was started with; silently ignoring a flag would mislead."""
    from .config import ConfigError

    fixed = ["problem", "suite", "lanes", "language", "dtype", "tolerance", "atol", "rtol", "strict", "max_attempts",
             "max_tokens", "target_speedup", "endpoint", "model", "base_url", "api_key_env", "config", "overrides",
             "out"]
    given = [name for name in fixed if getattr(args, name, None) not in (None, [])]
    if given:
        flags = ", ".join("PROBLEM" if n == "problem" else "SUITE" if n == "suite" else
                          "--set" if n == "overrides" else f"--{n.replace('_', '-')}" for n in given)
        raise ConfigError(f"--resume keeps the run's saved settings; only --budget and --device may change "
                          f"(got {flags})")


def _resumed(search, args):
    """The saved search settings with what a resume may change: more time, another device."""
    from .config import parse_duration

    if args.budget:
        search.budget_s = parse_duration(args.budget)
    if args.device:
        search.device = args.device
    return search


def search_configs(args):
    from .config import build, parse_duration

    model_flags = {"endpoint": args.endpoint, "model": args.model, "base_url": args.base_url,
                   "api_key_env": args.api_key_env}
    search_flags = {"budget_s": parse_duration(args.budget) if args.budget else None, "lanes": args.lanes,
                    "language": args.language, "dtype": args.dtype, "tolerance": args.tolerance, "atol": args.atol,
                    "rtol": args.rtol, "device": args.device, "strict": args.strict,
                    "max_attempts": args.max_attempts, "max_tokens": args.max_tokens,
                    "target_speedup": args.target_speedup}
    return build(args.config, model_flags, search_flags)


def _start(search, model):
    """The device and a model client for a search, or a ConfigError/LLMError that says what is wrong."""
    from .config import ConfigError
    from .llm.client import LLMClient
    from .verify import resolve_device

    if search.lanes < 1 or search.budget_s <= 0:
        raise ConfigError("--lanes and --budget must be positive")
    device = resolve_device(search.device)
    if search.language == "cuda" and device != "cuda":
        raise ConfigError("a CUDA C++ search needs a GPU: without one its candidates can only be compile-checked")
    return device, LLMClient(model)


def _search(client, pool_config, run_dir: Path, work):
    """Check the endpoint, start the verifier pool and the display, and run `await work(pool, display)`.
    Returns (result, None), or (None, exit code) after a one-line error; finished work stays in run_dir."""
    import asyncio
    from dataclasses import replace

    from .llm.client import LLMError
    from .search.display import Display
    from .verify import WorkerPool
    from .verify.live_pools import Stopped

    if client.config.api_key_env:  # whatever the variable is called, candidates never see it
        pool_config = replace(pool_config, hidden_env=(*pool_config.hidden_env, client.config.api_key_env))

    async def main_loop():
        try:
            await client.check()
            with WorkerPool(pool_config) as pool, Display() as display:
                return await work(pool, display)
        finally:
            await client.close()

    print(f"run directory: {run_dir} (a stopped run continues with --resume {run_dir})", flush=True)
    try:
        return asyncio.run(main_loop()), None
    except LLMError as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return None, EXIT_USAGE
    except (KeyboardInterrupt, Stopped) as e:
        how, code = _how_stopped(e)
        print(f"kernelsearch: {how}; finished work is in {run_dir}: continue with --resume {run_dir}",
              file=sys.stderr)
        return None, code


def run_solve(args) -> int:
    import time

    from .config import ConfigError
    from .llm.client import LLMError
    from .problem import ProblemError, load_problem, parse_overrides
    from .search.solve import CONFIG_NAME, STORE_NAME, load_config, save_config, solve
    from .verify import PoolConfig

    try:
        if args.resume:
            _only_budget_on_resume(args)
            run_dir = Path(args.resume)
            if not (run_dir / CONFIG_NAME).is_file():
                raise ConfigError(f"{run_dir} holds no run to resume (no {CONFIG_NAME})")
            problem_path, overrides, search, model = load_config(run_dir)
            search = _resumed(search, args)
        else:
            if not args.problem:
                raise ConfigError("give a PROBLEM file, or --resume RUN_DIR")
            model, search = search_configs(args)
            problem_path, overrides = args.problem, parse_overrides(args.overrides)
            stem = Path(args.problem).stem
            run_dir = Path(args.out or f"runs/solve-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
            if (run_dir / STORE_NAME).exists():
                raise ConfigError(f"{run_dir} already holds a run: continue it with --resume {run_dir}")
        problem = load_problem(problem_path, overrides)
        device, client = _start(search, model)
        if not args.resume:
            save_config(run_dir, problem_path, overrides, search, model)
    except (ConfigError, ProblemError, LLMError, OSError, ValueError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    config = PoolConfig(device=device, compile_timeout_s=search.compile_timeout_s, run_timeout_s=search.run_timeout_s)
    result, failed = _search(client, config, run_dir,
                             lambda pool, display: solve(problem, search, client, pool, run_dir, display))
    if failed is not None:
        return failed
    print(f"{result.summary['headline']}\nrun: {run_dir}" + (f"\nkernel: {run_dir / 'best.py'}" if result.best else ""))
    if result.fatal:
        print(f"kernelsearch: error: {result.fatal} (recorded work is in {run_dir}; continue with --resume {run_dir})",
              file=sys.stderr)
        return EXIT_USAGE
    return EXIT_CORRECT if result.best else EXIT_REJECTED


def run_attention(args) -> int:
    from .attention.spec import SpecError, load_spec
    from .attention.trace import TraceError
    from .attention.workflow import run_attention as run

    try:
        spec = load_spec(args.spec)
        result = run(spec, Path(args.out), device=args.device, tune=args.tune, bench=args.bench, trials=args.trials,
                     shape_indices=args.shape, flex_autotune=args.flex_autotune,
                     progress=lambda line: print(line, flush=True))
    except (SpecError, TraceError, ValueError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    passed = sum(v.status == "correct" for _, v in result.verdicts)
    print(f"{spec.name}: {passed}/{len(result.verdicts)} shapes verified correct; kernel: {result.kernel_path}")
    return EXIT_CORRECT if result.ok else EXIT_REJECTED


def run_bench(args) -> int:
    import time

    from .config import ConfigError, parse_prices
    from .llm.client import LLMError, ModelConfig
    from .problem import ProblemError
    from .search.bench import BENCH_NAME, load_bench, replay, run_bench as bench_loop, save_bench, tolerance_of
    from .search.solve import TOLERANCE_FIELDS, SolveConfig
    from .suites import load_suite
    from .verify import PoolConfig, WorkerPool, resolve_device
    from .verify.tolerance import check_settings, describe_settings

    try:
        prices = parse_prices(args.price)
        gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
        if args.replay:
            source = Path(args.replay)
            if not (source / "problems").is_dir():
                raise ConfigError(f"{source} holds no bench run to replay (no problems/)")
            run_dir = Path(args.out or f"{source.as_posix().rstrip('/')}-replay-{time.strftime('%Y%m%d-%H%M%S')}")
            # the tolerance the run was searched under, unless --tolerance/--atol/--rtol say otherwise
            given = {k: getattr(args, k) for k in TOLERANCE_FIELDS if getattr(args, k) is not None}
            saved = load_bench(source)["search"] if (source / BENCH_NAME).is_file() else {}
            tolerance = {**tolerance_of(saved), **given}
            check_settings(tolerance["tolerance"], tolerance["atol"], tolerance["rtol"])
            device = resolve_device(args.device or "auto")
            with WorkerPool(PoolConfig(device=device, gpus=gpus)) as pool:
                replay(source, run_dir, pool, progress=lambda line: print(line, flush=True), tolerance=given)
                context = {"replay of": str(source), "device": pool.info.get("device_name", device),
                           "torch": pool.info.get("torch", ""), "triton": pool.info.get("triton", ""),
                           "tolerance": describe_settings(tolerance["tolerance"], tolerance["atol"],
                                                          tolerance["rtol"])}
            return _finish_bench(run_dir, context, prices)
        if args.resume:
            _only_budget_on_resume(args)
            run_dir = Path(args.resume)
            if not (run_dir / BENCH_NAME).is_file():
                raise ConfigError(f"{run_dir} holds no bench to resume (no {BENCH_NAME})")
            saved = load_bench(run_dir)
            problems, suite = saved["problems"], saved["suite"]
            search, model = SolveConfig(**saved["search"]), ModelConfig(**saved["model"])
            search = _resumed(search, args)
        else:
            if not args.suite:
                raise ConfigError("give a SUITE (kernelbench, attention or a directory), --resume or --replay")
            model, search = search_configs(args)
            name = Path(args.suite).name if args.suite not in ("kernelbench", "attention") else args.suite
            run_dir = Path(args.out or f"runs/bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
            if (run_dir / BENCH_NAME).exists():
                raise ConfigError(f"{run_dir} already holds a bench: continue it with --resume {run_dir}")
            suite = {"name": args.suite, "level": args.level, "problems": args.problems,
                     "kernelbench_dir": args.kernelbench_dir, "spec_dir": args.spec_dir}
        device, client = _start(search, model)
        if not args.resume:  # the attention suite builds its problems at the device's shapes
            problems = load_suite(args.suite, level=args.level, selection=args.problems,
                                  kernelbench_dir=args.kernelbench_dir, spec_dir=args.spec_dir, device=device,
                                  work_dir=run_dir / "suite")
            save_bench(run_dir, problems, suite, search, model)
    except (ConfigError, ProblemError, LLMError, OSError, ValueError, RuntimeError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    async def work(pool, display):
        concurrent = args.concurrent or 2 * len(pool.workers)  # the GPU verifies while models think
        outcomes = await bench_loop(problems, search, client, pool, run_dir, display, concurrent)
        return outcomes, pool.info.get("device_name", device)

    config = PoolConfig(device=device, gpus=gpus, compile_timeout_s=search.compile_timeout_s,
                        run_timeout_s=search.run_timeout_s)
    result, failed = _search(client, config, run_dir, work)
    if failed is not None:
        return failed
    outcomes, device_name = result
    for key, outcome in outcomes.items():
        print(f"{key}: {outcome}")
    context = {"suite": suite.get("name"), "device": device_name, "model": client.config.model,
               "endpoint": client.config.base_url, "budget per problem": f"{search.budget_s:g} s",
               "lanes": search.lanes, "language": search.language,
               "tolerance": describe_settings(search.tolerance, search.atol, search.rtol)}
    return _finish_bench(run_dir, context, prices)


def _finish_bench(run_dir: Path, context: dict, prices) -> int:
    """Metrics, results.csv, summary.json and report.html for a bench or replay run."""
    from .report.metrics import load_results, summarize, write_results

    results = load_results(run_dir)
    summary = summarize(results, prices)
    write_results(run_dir, results, {**summary, "context": context})
    (run_dir / "context.json").write_text(json.dumps(context, indent=2) + "\n")
    report = _write_report(run_dir, results, context, prices)
    fast = summary["fast_p"]["eager"]["1"]
    print(f"{summary['correct']}/{summary['problems']} problems correct"
          + (f"; fast_1 vs eager {fast:.0%}" if fast is not None else "; not timed (no GPU)")
          + f"\nresults: {run_dir / 'results.csv'}, {run_dir / 'summary.json'}"
          + (f"\nreport: {report}" if report else ""))
    return EXIT_CORRECT if summary["correct"] else EXIT_REJECTED


def _write_report(run_dir: Path, results, context: dict, prices) -> Path | None:
    try:
        from .report.html import write_report
        return write_report(run_dir, results, context, prices)
    except ImportError as e:  # matplotlib is a dependency; say what is missing rather than fail the run
        print(f"kernelsearch: no report ({e}); `kernelsearch report {run_dir}` where matplotlib is installed",
              file=sys.stderr)
        return None


def run_report(args) -> int:
    from .config import ConfigError, parse_prices
    from .report.metrics import load_results

    run_dir = Path(args.run_dir)
    try:
        prices = parse_prices(args.price)
        results = load_results(run_dir)
    except (ConfigError, FileNotFoundError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    context_path = run_dir / "context.json"
    context = json.loads(context_path.read_text()) if context_path.exists() else {"run": str(run_dir)}
    report = _write_report(run_dir, results, context, prices)
    if report is None:
        return EXIT_USAGE
    print(f"report: {report}")
    if args.open:
        import webbrowser
        webbrowser.open(report.resolve().as_uri())
    return EXIT_CORRECT


def run_verify(args) -> int:
    from .problem import ProblemError, load_problem, parse_overrides
    from .verify import PoolConfig, WorkerPool, make_request
    from .verify.tolerance import ToleranceError, check_settings
    from .verify.verdict import format_verdict

    try:
        check_settings(args.tolerance, args.atol, args.rtol)
        problem = load_problem(args.problem, parse_overrides(args.overrides))
        candidate = Path(args.candidate)
        if not candidate.is_file():
            raise ProblemError(f"candidate file not found: {candidate}")
        try:
            source = candidate.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ProblemError(f"{candidate} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except (ProblemError, ToleranceError, OSError, UnicodeDecodeError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    request = make_request(problem, source, candidate.stem, dtype=args.dtype, trials=args.trials, seed=args.seed,
                           timing=not args.no_timing, strict=args.strict, tolerance=args.tolerance, atol=args.atol,
                           rtol=args.rtol)
    config = PoolConfig(device=args.device, compile_timeout_s=args.compile_timeout, run_timeout_s=args.run_timeout)
    try:
        with WorkerPool(config) as pool:
            verdict = pool.verify(request)
    except (RuntimeError, ValueError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print(format_verdict(verdict))
    if verdict.status == "problem_error":
        return EXIT_USAGE
    return EXIT_CORRECT if verdict.ok else EXIT_REJECTED


def run_mcp(args) -> int:
    try:
        import mcp.server  # noqa: F401  (an optional extra)
    except ImportError:
        print("kernelsearch: error: `kernelsearch mcp` needs the MCP SDK: pip install 'kernelsearch[mcp]'",
              file=sys.stderr)
        return EXIT_USAGE
    from .agents.server import ServerSettings, serve
    from .verify.devices import DeviceError, resolve_device, resolve_gpus

    try:
        if args.gpus and not all(g.strip().isdigit() for g in args.gpus.split(",")):
            raise ValueError(f"--gpus takes GPU numbers like 0,1; got {args.gpus!r}")
        gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
        if not args.timeout > 0:
            raise ValueError("--timeout must be positive")
        device = resolve_device(args.device)
        if device == "cuda":
            resolve_gpus(gpus)  # a GPU that is not here is an error now, not a pool that cannot start
    except (DeviceError, ValueError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    import signal

    from .verify.live_pools import Stopped

    # Ctrl-C stops the server like SIGTERM does (live_pools raises Stopped); asyncio's own handler would only
    # cancel the main task, which then waits for the stdin reader, i.e. for the client to close the pipe.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        serve(ServerSettings(device=device, gpus=gpus, timeout_s=args.timeout))
    except (KeyboardInterrupt, Stopped) as e:
        # The workers are gone (live_pools), but the SDK's thread reading stdin cannot be interrupted: a normal
        # exit would wait for it until the client closes the pipe, so leave at once.
        how, code = _how_stopped(e)
        print(f"kernelsearch: {how}", file=sys.stderr, flush=True)
        os._exit(code)
    return EXIT_CORRECT


if __name__ == "__main__":
    main()
