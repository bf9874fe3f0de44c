"""The kernelsearch command line: commands, options and help (what they do: *_commands.py, commands.py; what their
exit codes mean: exits.py)."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from .exits import EXIT_CODES, EXIT_USAGE, STOPPED, how_stopped
from .limits import count_problem, positive_problem
from .search.solve_config import SolveConfig
from .verify.pool.gpu_share import WORKERS_PER_GPU
from .verify.pool.live_pools import Stopped
from .verify.tolerance import DEFAULT_PROFILE, PROFILES, profile_values
from .verify.verdict import RULES


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2, as every other error of ours."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"kernelsearch: error: {message} (see {self.prog} --help)\n")


def at_least_one(text: str) -> int:
    """The type of every count (--trials, --lanes, --max-attempts, ...): limits.count_problem's rule."""
    value = int(text)
    problem = count_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def positive(text: str) -> float:
    value = float(text)
    problem = positive_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
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
    add_rules_option(verify, from_config=False)
    add_ray_option(verify)
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
    solve.add_argument("problem", nargs="?", help="KernelBench-format problem file, or an attention spec (a file "
                       "with score_mod/mask_mod and no Model, as `attention` takes), searched from its generated "
                       "kernel (README: solve); not needed with --resume")
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

    retime = commands.add_parser("retime", help="verify and time every correct kernel of a run again (on a GPU, at the "
                                 "problem's original sizes) and keep the fastest: rewrites best.py and summary.json")
    retime.add_argument("run_dir", help="a solve run, or a bench run (each of its problems)")
    retime.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="where to time (default auto; timing needs cuda)")
    retime.add_argument("--sizes", default="original", choices=["original", "searched"],
                        help="original: the problem file's own sizes; searched: with the run's --set and --shrink")
    retime.add_argument("--again", action="store_true",
                        help="time every kernel again, also those this GPU re-timed before at these sizes (by "
                        "default a stopped re-time goes on where it stopped)")
    add_workers_option(retime)
    add_ray_option(retime)

    mcp = commands.add_parser("mcp", help="serve the verifier and the attention generator to coding agents over the "
                              "Model Context Protocol (stdio); needs pip install 'kernelsearch[mcp]'")
    mcp.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                     help="where candidates run (default auto: cuda when a GPU is visible)")
    mcp.add_argument("--gpus", metavar="0,1,...", help="GPUs to verify on, one worker each (default all)")
    mcp.add_argument("--timeout", type=float, default=600.0, metavar="S",
                     help="the longest one tool call may take, in seconds (default 600)")

    _document(commands)
    args = parser.parse_args(argv)
    # what the commands do loads once one runs (the verifier's pool, the search, rich): --help stays fast
    from . import commands, run_dir_commands, search_commands

    handlers = {"attention": commands.run_attention, "verify": commands.run_verify, "mcp": commands.run_mcp,
                "solve": search_commands.run_solve, "bench": search_commands.run_bench,
                "report": run_dir_commands.run_report, "retime": run_dir_commands.run_retime}

    try:
        code = handlers[args.command](args)
    except (KeyboardInterrupt, Stopped) as e:  # the verifier's workers are gone already (verify.live_pools)
        how, code = how_stopped(e)
        print(f"kernelsearch: {how}", file=sys.stderr)
    sys.exit(code)


def add_search_options(p) -> None:
    """The model and search flags shared by `solve` and `bench`; left unset, the config file or defaults decide."""
    p.add_argument("--budget", help="wall-clock budget per problem: seconds or minutes, like 90s or 15m "
                   "(default 15m)")
    p.add_argument("--lanes", type=at_least_one, help="concurrent refinement chains")
    p.add_argument("--language", choices=["triton", "cuda"])
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    add_tolerance_options(p, from_config=True)
    add_rules_option(p, from_config=True)
    p.add_argument("--device", choices=["auto", "cuda", "cpu"])
    add_workers_option(p)
    p.add_argument("--strict", action="store_true", default=None, help="reject kernels that keep compute in PyTorch")
    p.add_argument("--max-attempts", type=at_least_one, help="stop after this many model attempts")
    p.add_argument("--shrink", choices=["off", "auto"], help="auto: on the CPU, scale the size constants of a "
                   "problem too large for the Triton interpreter down until it fits, before any model call; the "
                   "model is told the original sizes are the target (default off: such a problem is refused)")
    p.add_argument("--max-tokens", type=at_least_one, help="stop after this many completion tokens")
    p.add_argument("--target-speedup", type=positive, help="stop once the best kernel is this much faster than eager")
    p.add_argument("--endpoint", help="a preset: nim, deepseek, openrouter, openai, vllm, sglang, ollama "
                   "(default nim)")
    p.add_argument("--model", help="model id (default: the preset's DeepSeek-R1)")
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    p.add_argument("--config", metavar="FILE.toml", help="[model] and [search] settings; flags override it")
    add_ray_option(p)
    _show_search_defaults(p)


def _show_search_defaults(p) -> None:
    """Search flags are None unless given (a config file may set them): their help shows SolveConfig's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(SolveConfig)}
    for action in p._actions:
        if action.dest in defaults and action.help is not argparse.SUPPRESS and "default" not in (action.help or ""):
            value = defaults[action.dest]
            shown = value if value not in (None, False) else "no limit" if action.dest.startswith("max_") else "off"
            action.help = f"{action.help or ''} (default {shown})".strip()


def add_workers_option(p: argparse.ArgumentParser) -> None:
    """--workers-per-gpu for solve, bench and retime."""
    p.add_argument("--workers-per-gpu", type=at_least_one, default=WORKERS_PER_GPU, metavar="N",
                   help="verifier workers sharing each GPU: a job runs beside the others where its problem fits a "
                   "share of the GPU's memory, and is timed alone (docs/verifier.md, Throughput)")


def add_ray_option(p) -> None:
    """--ray for verify, solve, bench and retime: the verifier on a Ray cluster (scale/, docs/scaling.md)."""
    p.add_argument("--ray", metavar="local|auto|ADDRESS", help="verify on a Ray cluster, one worker per GPU of "
                   "every node: local starts one on this machine, auto joins the one RAY_ADDRESS names or that runs "
                   "here, else HOST:PORT; needs pip install 'kernelsearch[ray]' (default: this machine's workers)")


def add_rules_option(p, from_config: bool) -> None:
    """--rules: ours, or KernelBench's (for solve and bench None unless given, as --tolerance)."""
    p.add_argument("--rules", choices=RULES, default=None if from_config else RULES[0],
                   help="kernelbench: judge as KernelBench's harness does, at the problem's shapes only (a kernel "
                   "wrong only at the second shape, shape_specific under kernelsearch's rules, is correct; its "
                   f"tolerance is the default profile's) (default {RULES[0]})")


def add_tolerance_options(p, from_config: bool) -> None:
    """--tolerance, --atol, --rtol. For solve and bench (`from_config`) they stay None unless given, so that a
    config file can set them; checked in config.build (verify: in run_verify)."""
    profiles = "; ".join(f"{name}: {profile_values(name)}" for name in PROFILES)
    p.add_argument("--tolerance", default=None if from_config else DEFAULT_PROFILE, metavar="PROFILE",
                   help=f"per element |out - ref| <= atol + rtol*|ref|, atol = rtol from the profile ({profiles}; "
                   f"kernelbench-v0 is what the published results used) (default {DEFAULT_PROFILE})")
    p.add_argument("--atol", type=float, help="absolute tolerance in place of the profile's (default: the profile's)")
    p.add_argument("--rtol", type=float, help="relative tolerance in place of the profile's (default: the profile's)")


if __name__ == "__main__":
    main()
