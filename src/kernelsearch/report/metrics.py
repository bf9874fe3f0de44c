"""Suite metrics from recorded attempts: correctness, fast_p, geometric-mean speedup, solve rate over time, tokens."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..search.retime import SIZES
from ..search.run_dir import RunDir
from ..verify.verdict import KERNELBENCH_PASSING, Status, Timing

P_VALUES = (0.0, 1.0, 1.5, 2.0)  # KernelBench reports fast_0 and fast_1; 1.5 and 2 show the tail
BASELINES = ("eager", "compile")
TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens")


@dataclass
class Point:
    """One finished attempt on a problem's timeline (seconds of its budget)."""
    t: float
    status: str
    speedup_eager: float | None = None


@dataclass
class ProblemResult:
    key: str
    solved: bool  # a kernel passed the final check (the cold re-check, or the replay)
    verdict: dict | None = None  # that final verdict
    source: str | None = None  # the reported kernel
    timeline: list[Point] = field(default_factory=list)
    tokens: dict = field(default_factory=dict)
    budget_s: float | None = None
    state: str = "finished"  # finished, unfinished (no summary yet), error
    error: str | None = None
    retimed_statuses: list[str] | None = None  # re-timed at the problem's own sizes: each attempt's status there

    @property
    def kernelbench_solved(self) -> bool:
        """Solved as KernelBench's harness judges (at the problem's shapes, no floor under a timing): the kept
        kernel, or any attempt whose status it would count as correct (shape_specific, suspicious). After a re-time
        at the problem's own sizes, the attempts' statuses there: a search at shrunk sizes judged none at them."""
        final = (self.verdict or {}).get("status")
        judged = self.retimed_statuses if self.retimed_statuses is not None else [p.status for p in self.timeline]
        return self.solved or final in KERNELBENCH_PASSING or any(s in KERNELBENCH_PASSING for s in judged)

    @property
    def timed(self) -> Timing | None:
        return Timing.of((self.verdict or {}).get("timing"))

    def speedup(self, baseline: str) -> float | None:
        return self.timed.speedup(baseline) if self.solved and self.timed else None

    def ms(self, which: str) -> float | None:
        return self.timed.ms(which) if self.timed else None

    def first(self, faster: bool = False) -> float | None:
        """Budget seconds until the first correct kernel (faster than eager PyTorch, with `faster`)."""
        times = [p.t for p in self.timeline
                 if p.status == Status.CORRECT and (not faster or (p.speedup_eager or 0) > 1.0)]
        return min(times, default=None)

    @property
    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.timeline:
            counts[p.status] = counts.get(p.status, 0) + 1
        return counts


# ---- reading runs ------------------------------------------------------------------------------------------
def load_results(run_dir: Path) -> list[ProblemResult]:
    """Every problem of a bench or replay run, or the one problem of a solve run."""
    run = RunDir(run_dir)
    if run.holds_search():
        return [_problem(run, run.path.name)]
    if not run.problems.is_dir():
        raise FileNotFoundError(f"{run} is not a kernelsearch run (no {run.store.name}, no {run.problems.name}/)")
    return [_problem(d, d.path.name) for d in run.problem_dirs()]


def _problem(d: RunDir, key: str) -> ProblemResult:
    """One search's result; a damaged store raises store.StoreError."""
    result = ProblemResult(key=key, solved=False)
    if d.replay.exists():  # a replay: the earlier run's kernel, verified again here
        result.verdict = json.loads(d.replay.read_text())
        result.solved = result.verdict.get("status") == Status.CORRECT
        result.source = d.read_best()
        return result
    if d.holds_search():
        attempts = d.attempts()
        result.timeline = [Point(a.finished_s, a.status, a.speedup_eager) for a in attempts
                           if a.finished_s is not None and a.status not in (Status.PENDING, Status.CANCELLED)]
        result.tokens = {k: sum(getattr(a, k) or 0 for a in attempts) for k in TOKEN_KINDS}
    summary = d.read_summary()
    if summary is not None:
        result.key = summary.get("problem") or result.key
        result.budget_s = summary.get("budget_s")
        result.solved = bool(summary.get("solved"))
        if summary.get("best"):
            result.verdict = summary["best"]["cold_check"]
            result.source = d.read_best()
        retime = summary.get("retime") or {}
        if retime.get("sizes") == SIZES[0]:
            result.retimed_statuses = [row.get("status") for row in retime.get("attempts", [])]
    else:
        result.state = "unfinished"
    if d.error.exists():
        result.state, result.error = "error", d.error.read_text().splitlines()[0]
    return result


# ---- metrics -----------------------------------------------------------------------------------------------
def fast_p(results: list[ProblemResult], p: float, baseline: str = "eager") -> float | None:
    """KernelBench's fast_p: the fraction of ALL problems with a correct kernel more than p times faster than the
    baseline. None when nothing was timed (no GPU)."""
    if not results or not any(r.speedup(baseline) is not None for r in results):
        return None
    return sum(1 for r in results if (r.speedup(baseline) or 0.0) > p) / len(results)


def geomean_speedup(results: list[ProblemResult], baseline: str = "eager") -> float | None:
    """Geometric mean of the speedups of the correct, timed problems."""
    values = [r.speedup(baseline) for r in results if r.speedup(baseline)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def solve_curve(results: list[ProblemResult]) -> list[tuple[float, float, float]]:
    """(t, fraction with a correct kernel by t, fraction with one faster than eager by t), one point per change,
    from the attempts' finish times during the search."""
    n = len(results)
    if not n:
        return []
    correct = [r.first() for r in results]
    faster = [r.first(faster=True) for r in results]
    times = sorted({0.0, *(t for t in correct + faster if t is not None)})
    return [(t, sum(1 for c in correct if c is not None and c <= t) / n,
             sum(1 for f in faster if f is not None and f <= t) / n) for t in times]


def summarize(results: list[ProblemResult], prices: tuple[float, float] | None = None) -> dict:
    """The metrics table; `prices` are (input, output) dollars per million tokens, reasoning billed as output."""
    n = len(results)
    tokens = {k: sum(r.tokens.get(k, 0) for r in results) for k in TOKEN_KINDS}
    summary = {
        "problems": n,
        "finished": sum(r.state == "finished" for r in results),
        "errors": sum(r.state == "error" for r in results),
        "correct": sum(r.solved for r in results),
        "correctness": sum(r.solved for r in results) / n if n else None,
        # KernelBench's pass rate beside ours: a kernel right at the problem's shapes only counts there
        "correct_kernelbench": sum(r.kernelbench_solved for r in results),
        "correctness_kernelbench": sum(r.kernelbench_solved for r in results) / n if n else None,
        "timed": any(r.speedup("eager") is not None for r in results),
        "fast_p": {b: {f"{p:g}": fast_p(results, p, b) for p in P_VALUES} for b in BASELINES},
        "geomean_speedup": {b: geomean_speedup(results, b) for b in BASELINES},
        "attempts": sum(len(r.timeline) for r in results),
        "tokens": tokens,
        "cost_usd": None,
        "solve_curve": solve_curve(results),
    }
    if prices:
        summary["cost_usd"] = round((tokens["prompt_tokens"] * prices[0] + tokens["completion_tokens"] * prices[1])
                                    / 1e6, 4)
    return summary


CSV_COLUMNS = ("problem", "state", "solved", "solved_kernelbench", "speedup_vs_eager", "speedup_vs_compile",
               "kernel_ms", "eager_ms", "compile_ms", "first_correct_s", "first_faster_s", "attempts", *TOKEN_KINDS,
               "error")


def write_results(run_dir: Path, results: list[ProblemResult], summary: dict) -> None:
    """`results.csv` (one row per problem) and `summary.json` (the metrics) in the run directory."""
    run = RunDir(run_dir)
    with open(run.results, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in results:
            writer.writerow([r.key, r.state, int(r.solved), int(r.kernelbench_solved), r.speedup("eager"),
                             r.speedup("compile"),
                             r.ms("candidate"), r.ms("eager"), r.ms("compile"), r.first(), r.first(faster=True),
                             len(r.timeline), *(r.tokens.get(k, 0) for k in TOKEN_KINDS), r.error or ""])
    run.write_summary(summary)
