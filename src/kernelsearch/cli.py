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

    args = parser.parse_args(argv)
    if args.command == "attention":
        sys.exit(run_attention(args))
    sys.exit(run_verify(args))


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


def format_verdict(v) -> str:
    lines = [f"{v.status}: {v.candidate} vs {v.problem} ({v.device}, {v.dtype}, {v.language})"]
    if v.message:
        lines.append(f"  {v.message}")
    for name, (old, new) in v.overrides.items():
        lines.append(f"  problem changed: {name} = {new} (was {old})")
    if v.trials:
        worst = max(v.trials, key=lambda t: t["max_abs_err"])
        passed = sum(t["ok"] for t in v.trials)
        lines.append(f"  trials: {passed}/{len(v.trials)} passed; worst max abs err {worst['max_abs_err']:.3g}, "
                     f"max rel err {worst['max_rel_err']:.3g}, rel L2 {worst['rel_l2']:.3g}")
    for name, check in v.checks.items():
        state = "ok" if check.get("ok") else "FAILED" if check.get("ok") is False else "note" if "note" in check \
            else "skipped"
        detail = check.get("skipped") or check.get("note") or check.get("changes") or ""
        lines.append(f"  check {name}: {state}{f' ({detail})' if detail else ''}")
    if v.pytorch_ops:
        lines.append(f"  compute kept in PyTorch: {', '.join(v.pytorch_ops)}")
    if v.timing:
        t = v.timing
        parts = [f"{t['candidate']['median_ms']:.4g} ms median"]
        for base in ("eager", "compile"):
            if isinstance(t.get(base), dict):
                parts.append(f"{base} {t[base]['median_ms']:.4g} ms ({t[f'speedup_vs_{base}']:.3g}x)")
            elif t.get(base):
                parts.append(f"{base} {t[base]}")
        lines.append("  timing: " + "; ".join(parts))
    elif v.timing_unavailable:
        lines.append(f"  timing: unavailable ({v.timing_unavailable})")
    for warning in v.warnings:
        lines.append(f"  warning: {warning}")
    if v.log_tail and v.status != "correct":
        lines.append("  worker log (tail):")
        lines.extend("    " + line for line in v.log_tail.splitlines()[-12:])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
