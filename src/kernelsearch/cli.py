"""The kernelsearch command line; each command is a thin layer over the package."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kernelsearch", description=__import__("kernelsearch").__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="verify a candidate kernel against a KernelBench problem")
    verify.add_argument("problem", help="KernelBench-format problem file (Model, get_inputs, get_init_inputs)")
    verify.add_argument("candidate", help="file defining ModelNew (Triton or CUDA via load_inline)")
    verify.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    verify.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    verify.add_argument("--trials", type=int, default=5)
    verify.add_argument("--seed", type=int, default=42)
    verify.add_argument("--set", dest="overrides", action="append", metavar="NAME=VALUE",
                        help="change a top-level size constant of the problem (repeatable)")
    verify.add_argument("--no-timing", action="store_true")
    verify.add_argument("--strict", action="store_true", help="reject candidates that keep compute ops in PyTorch")
    verify.add_argument("--compile-timeout", type=float, default=300.0, metavar="S")
    verify.add_argument("--run-timeout", type=float, default=300.0, metavar="S")
    verify.add_argument("--json", action="store_true", help="print one JSON verdict")

    attention = commands.add_parser("attention", help="turn a FlexAttention-style score_mod/mask_mod spec into a "
                                    "verified, fused Triton kernel (no model, no API key)")
    attention.add_argument("spec", help="Python file with score_mod and/or mask_mod, SHAPES and TEST_SHAPES")
    attention.add_argument("--out", default="runs/attention", help="directory for the kernel and its problems")
    attention.add_argument("--tune", action="store_true", help="search block sizes, warps and stages (GPU)")
    attention.add_argument("--bench", action="store_true", help="time against FlexAttention and SDPA (GPU)")
    attention.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    attention.add_argument("--trials", type=int, default=None, help="verification trials per shape")
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

    args = parser.parse_args(argv)
    if args.command == "attention":
        sys.exit(run_attention(args))
    if args.command == "solve":
        sys.exit(run_solve(args))
    sys.exit(run_verify(args))


def add_search_options(p) -> None:
    """The model and search flags shared by `solve` and `bench`; left unset, the config file or defaults decide."""
    p.add_argument("--budget", help="wall-clock budget per problem: seconds or minutes, like 90s or 15m "
                   "(default 15m)")
    p.add_argument("--lanes", type=int, help="concurrent refinement chains (default 4)")
    p.add_argument("--language", choices=["triton", "cuda"])
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"])
    p.add_argument("--strict", action="store_true", default=None, help="reject kernels that keep compute in PyTorch")
    p.add_argument("--max-attempts", type=int, help="stop after this many attempts")
    p.add_argument("--max-tokens", type=int, help="stop after this many completion tokens")
    p.add_argument("--target-speedup", type=float, help="stop once the best kernel is this much faster than eager")
    p.add_argument("--endpoint", help="a preset: nim, deepseek, openrouter, openai, vllm, sglang, ollama "
                   "(default nim)")
    p.add_argument("--model", help="model id (default: the preset's DeepSeek-R1)")
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    p.add_argument("--config", metavar="FILE.toml", help="[model] and [search] settings; flags override it")


def search_configs(args):
    from .config import build, parse_duration

    model_flags = {"endpoint": args.endpoint, "model": args.model, "base_url": args.base_url,
                   "api_key_env": args.api_key_env}
    search_flags = {"budget_s": parse_duration(args.budget) if args.budget else None, "lanes": args.lanes,
                    "language": args.language, "dtype": args.dtype, "device": args.device, "strict": args.strict,
                    "max_attempts": args.max_attempts, "max_tokens": args.max_tokens,
                    "target_speedup": args.target_speedup}
    return build(args.config, model_flags, search_flags)


def run_solve(args) -> int:
    import asyncio
    import time

    from .config import ConfigError
    from .llm.client import LLMClient, LLMError
    from .problem import ProblemError, load_problem, parse_overrides
    from .search.display import Display
    from .search.solve import CONFIG_NAME, STORE_NAME, load_config, save_config, solve
    from .verify import PoolConfig, WorkerPool, resolve_device

    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / CONFIG_NAME).is_file():
                raise ConfigError(f"{run_dir} holds no run to resume (no {CONFIG_NAME})")
            problem_path, overrides, search, model = load_config(run_dir)
            if args.budget:  # the only thing a resume may change: more time
                from .config import parse_duration
                search.budget_s = parse_duration(args.budget)
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
        if search.lanes < 1 or search.budget_s <= 0:
            raise ConfigError("--lanes and --budget must be positive")
        device = resolve_device(search.device)
        if search.language == "cuda" and device != "cuda":
            raise ConfigError("a CUDA C++ search needs a GPU: without one its candidates can only be compile-checked")
        client = LLMClient(model)
        if not args.resume:
            save_config(run_dir, problem_path, overrides, search, model)
    except (ConfigError, ProblemError, LLMError, OSError, ValueError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    async def main_loop():
        try:
            await client.check()
            with WorkerPool(PoolConfig(device=device, compile_timeout_s=search.compile_timeout_s,
                                       run_timeout_s=search.run_timeout_s)) as pool, Display() as display:
                return await solve(problem, search, client, pool, run_dir, display)
        finally:
            await client.close()

    try:
        result = asyncio.run(main_loop())
    except LLMError as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"kernelsearch: interrupted; every finished attempt is in {run_dir}: continue with --resume {run_dir}",
              file=sys.stderr)
        return 130
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


def run_verify(args) -> int:
    from .problem import ProblemError, load_problem, parse_overrides
    from .verify import PoolConfig, WorkerPool, make_request
    from .verify.verdict import format_verdict

    try:
        if args.trials < 1:
            raise ProblemError("--trials must be at least 1")
        problem = load_problem(args.problem, parse_overrides(args.overrides))
        candidate = Path(args.candidate)
        if not candidate.is_file():
            raise ProblemError(f"candidate file not found: {candidate}")
        source = candidate.read_text()
    except (ProblemError, OSError, UnicodeDecodeError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    request = make_request(problem, source, candidate.stem, dtype=args.dtype, trials=args.trials, seed=args.seed,
                           timing=not args.no_timing, strict=args.strict)
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


if __name__ == "__main__":
    main()
