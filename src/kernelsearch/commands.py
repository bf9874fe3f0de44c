"""What the one-shot commands do (verify, attention, mcp), after cli.py has parsed their command line; each run_*
returns its exit code (exits.EXIT_CODES says what each means). The commands that run searches: search_commands.py."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from .attention.spec import SpecError, load_spec
from .exits import EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE, how_stopped
from .problem import ProblemError, load_problem, parse_overrides, read_source
from .scale import describe_backend, open_pool
from .verify import PoolConfig, make_request
from .verify.pool.devices import DeviceError, resolve_device, resolve_gpus
from .verify.pool.live_pools import Stopped
from .verify.tolerance import ToleranceError, check_settings
from .verify.verdict import Status, format_verdict


def run_attention(args) -> int:
    # torch stays out of the CLI until `attention` runs (the tracer and the generator import it)
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
    passed = sum(v.ok for _, v in result.verdicts)
    print(f"{spec.name}: {passed}/{len(result.verdicts)} shapes verified correct; kernel: {result.kernel_path}")
    return EXIT_CORRECT if result.ok else EXIT_REJECTED


def run_verify(args) -> int:
    try:
        check_settings(args.tolerance, args.atol, args.rtol)
        problem = load_problem(args.problem, parse_overrides(args.overrides))
        candidate = Path(args.candidate)
        source = read_source(candidate, "candidate")
    except (ProblemError, ToleranceError, OSError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    request = make_request(problem, source, candidate.stem, dtype=args.dtype, trials=args.trials, seed=args.seed,
                           timing=not args.no_timing, strict=args.strict, rules=args.rules, tolerance=args.tolerance,
                           atol=args.atol, rtol=args.rtol)
    config = PoolConfig(device=args.device, compile_timeout_s=args.compile_timeout, run_timeout_s=args.run_timeout)
    try:
        with open_pool(config, args.ray) as pool:
            verdict = pool.verify(request)
            if args.ray and not args.json:
                print(f"verifier: {describe_backend(pool)}")
    except (RuntimeError, ValueError) as e:  # ValueError: scale.cluster.ClusterError (no Ray, no cluster there)
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print(format_verdict(verdict))
    if verdict.status == Status.PROBLEM_ERROR:
        return EXIT_USAGE
    return EXIT_CORRECT if verdict.ok else EXIT_REJECTED


def run_mcp(args) -> int:
    try:
        import mcp.server  # noqa: F401  (an optional extra)
    except ImportError:
        print("kernelsearch: error: `kernelsearch mcp` needs the MCP SDK: pip install 'kernelsearch[mcp]'",
              file=sys.stderr)
        return EXIT_USAGE
    from .agents.server import ServerSettings, serve  # mcp and torch load only for `mcp`

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
    # Ctrl-C stops the server like SIGTERM does (live_pools raises Stopped); asyncio's own handler would only
    # cancel the main task, which then waits for the stdin reader, i.e. for the client to close the pipe.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        serve(ServerSettings(device=device, gpus=gpus, timeout_s=args.timeout))
    except (KeyboardInterrupt, Stopped) as e:
        # The workers are gone (live_pools), but the SDK's thread reading stdin cannot be interrupted: a normal
        # exit would wait for it until the client closes the pipe, so leave at once.
        how, code = how_stopped(e)
        print(f"kernelsearch: {how}", file=sys.stderr, flush=True)
        os._exit(code)
    return EXIT_CORRECT
