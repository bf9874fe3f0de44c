"""The commands that read a run directory after its search (report, retime), and the bench's ending that both
the bench and a re-time of it write: metrics, results, summary and the HTML report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .config import ConfigError, parse_prices
from .exits import EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE
from .problem import ProblemError
from .report.html import write_report
from .report.metrics import load_results, summarize, write_results
from .scale import open_pool
from .scale.cluster import connect_for
from .search.retime import retime_all, targets
from .search.run_dir import RunDir, RunDirError
from .store import StoreError
from .verify import PoolConfig, resolve_device


def finish_bench(run_dir: Path, context: dict, prices) -> int:
    """Metrics, results.csv, summary.json and report.html for a bench or replay run."""
    run = RunDir(run_dir)
    results = load_results(run_dir)
    summary = summarize(results, prices)
    write_results(run_dir, results, {**summary, "context": context})
    run.context.write_text(json.dumps(context, indent=2) + "\n")
    report = write_report_or_say(run_dir, results, context, prices)
    fast = summary["fast_p"]["eager"]["1"]
    print(f"{summary['correct']}/{summary['problems']} problems correct"
          + f" ({summary['correct_kernelbench']} as KernelBench judges, at the problems' shapes only)"
          + (f"; fast_1 vs eager {fast:.0%}" if fast is not None else "; not timed (no GPU)")
          + f"\nresults: {run.results}, {run.summary}"
          + (f"\nreport: {report}" if report else ""))
    return EXIT_CORRECT if summary["correct"] else EXIT_REJECTED


def write_report_or_say(run_dir: Path, results, context: dict, prices) -> Path | None:
    try:
        return write_report(run_dir, results, context, prices)
    except ImportError as e:  # matplotlib is a dependency; say what is missing rather than fail the run
        print(f"kernelsearch: no report ({e}); `kernelsearch report {run_dir}` where matplotlib is installed",
              file=sys.stderr)
        return None


def run_report(args) -> int:
    run_dir = Path(args.run_dir)
    try:
        prices = parse_prices(args.price)
        results = load_results(run_dir)
    except (ConfigError, FileNotFoundError, StoreError, RunDirError) as e:
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    context_path = RunDir(run_dir).context
    context = json.loads(context_path.read_text()) if context_path.exists() else {"run": str(run_dir)}
    report = write_report_or_say(run_dir, results, context, prices)
    if report is None:
        return EXIT_USAGE
    print(f"report: {report}")
    if args.open:
        import webbrowser
        webbrowser.open(report.resolve().as_uri())
    return EXIT_CORRECT


def run_retime(args) -> int:
    """Every correct kernel of a run verified and timed again (here, or on a Ray cluster's GPUs); the fastest
    becomes the run's best."""
    run = RunDir(args.run_dir)
    try:
        if not (run.holds_search() or run.holds_bench()):
            raise RunDirError(f"{run} is not a kernelsearch run (no {run.store.name}, no {run.bench.name})")
        run.check_readable()
        found = targets(run, args.sizes)
        if args.ray:  # the cluster's device, not this machine's: a laptop may re-time on the cluster's GPUs
            device = connect_for(args.ray, args.device)
        else:
            device = resolve_device(args.device)
        if device != "cuda":
            raise RunDirError("re-timing needs a GPU: without one nothing is timed, so there is nothing to rank "
                              "(run it where torch sees a CUDA device" + (", or on a Ray cluster with GPUs)"
                                                                           if args.ray else ")"))
        pool = open_pool(PoolConfig(device=device, workers_per_gpu=args.workers_per_gpu), args.ray)
    except (RunDirError, StoreError, ProblemError, OSError, ValueError, RuntimeError) as e:
        # ValueError also scale.cluster.ClusterError (no Ray, no cluster there); RuntimeError: no actor started
        print(f"kernelsearch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    with pool:
        summaries = retime_all(found, pool, args.sizes, progress=lambda line: print(line, flush=True),
                               again=args.again)
        device_name = pool.info.get("device_name", device)
    if run.holds_bench() and not run.holds_search():  # the bench's metrics and report from the new verdicts
        context = json.loads(run.context.read_text()) if run.context.is_file() else {"run": str(run)}
        return finish_bench(run.path, {**context, "re-timed on": f"{device_name}, {args.sizes} sizes"}, None)
    return EXIT_CORRECT if any(s["solved"] for s in summaries) else EXIT_REJECTED
