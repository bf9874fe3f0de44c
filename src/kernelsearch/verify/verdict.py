"""What the verifier is asked (VerifyRequest) and what it answers (Verdict); both cross processes as JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from .tolerance import DEFAULT_PROFILE, Tolerance, resolve_tolerance


class Status(StrEnum):
    """Every status an attempt can have: the verifier's outcomes, then the states of a search's attempt that has
    no verdict. Members are the strings stored in JSON and SQLite, and compare equal to them."""
    CORRECT = "correct"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    INCORRECT = "incorrect"
    REJECTED = "rejected"
    COMPILED = "compiled"  # a CUDA candidate checked on a machine without a GPU: it built, nothing ran
    SHAPE_SPECIFIC = "shape_specific"  # right at the problem's shapes, wrong (or raising) at a second shape
    SUSPICIOUS = "suspicious"  # timed faster than the GPU can physically run the problem: not a speedup
    PROBLEM_ERROR = "problem_error"  # the problem's fault (or too large for the CPU interpreter), not the candidate's
    PENDING = "pending"  # asked and not finished yet
    NO_CODE = "no_code"  # the answer held no kernel
    LLM_ERROR = "llm_error"  # the model call failed
    CANCELLED = "cancelled"  # cut off by a stop, the deadline or a kill
    DUPLICATE = "duplicate"  # the same kernel as an earlier attempt: not verified again


SEARCH_STATES = (Status.PENDING, Status.NO_CODE, Status.LLM_ERROR, Status.CANCELLED, Status.DUPLICATE)
STATUSES = tuple(s for s in Status if s not in SEARCH_STATES)  # what the verifier answers
# What KernelBench's own harness would count as correct: it judges at the problem's shapes only, and has no floor
# under a timing (its pass rates, set beside ours in bench's summary and report).
KERNELBENCH_PASSING = (Status.CORRECT, Status.SHAPE_SPECIFIC, Status.SUSPICIOUS)
RULES = ("kernelsearch", "kernelbench")  # --rules: ours (the default), or KernelBench's
# Who may overrule the status a job gave, in the order they look at its verdict, and which statuses each may
# overrule (to `rejected`): the worker, after the job, for a refusal of its run-time wall (whatever the status: the
# candidate may have swallowed the exception) and for a harness violation (a patched timer, a thread left running:
# a verdict that already says the candidate failed for another reason stays); then the pool, for a `correct` that
# the answer keeper's record of its comparisons does not back (keeper_process.unbacked).
OVERRULED_BY = {
    "refused at run time": STATUSES,
    "harness violation": (Status.CORRECT, Status.INCORRECT, Status.RUNTIME_ERROR),
    "not backed by the answer keeper": (Status.CORRECT,),
}


# The seeds of a job's inputs, for the worker and the keeper alike: trial t's are seed + t, the others far from any
# trial's. The contribution check's inputs (worker/extra_checks.check_contribution) are never compared with an answer.
VARIANT_SEED, TIMING_SEED, FRESH_SEED, CONTRIBUTION_SEED = 100, 1000, 2000, 3000


@dataclass
class VerifyRequest:
    problem_source: str
    candidate_source: str
    problem_name: str = "problem"
    candidate_name: str = "candidate"
    dtype: str = "fp32"
    trials: int = 5
    seed: int = 42
    timing: bool = True
    strict: bool = False
    variant_source: str | None = None  # the problem at a second input shape (Problem.variant)
    variant_changes: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)  # NAME -> [old, new], reported back as applied
    max_cpu_elements: int = 1 << 24  # interpreter limits, see worker.estimate_work
    max_cpu_flops: float = 2e10
    fresh_worker: bool = False  # run in a newly started worker process (nothing cached, nothing inherited)
    rules: str = RULES[0]  # "kernelbench": a kernel wrong only at the second shape is correct (KERNELBENCH_PASSING)
    tolerance: str = DEFAULT_PROFILE  # a profile of tolerance.PROFILES; atol/rtol, when set, replace its values
    atol: float | None = None
    rtol: float | None = None

    def resolved_tolerance(self) -> Tolerance:
        return resolve_tolerance(self.tolerance, self.dtype, self.atol, self.rtol)

    def compared_seeds(self) -> set[tuple[int, str]]:
        """Every (seed, kind) whose answers the job lets the worker ask the keeper about, each at most once."""
        wanted = {(self.seed + t, "trial") for t in range(self.trials)}
        if self.variant_source:
            wanted.add((self.seed + VARIANT_SEED, "variant"))
        if self.timing:
            wanted.add((self.seed + FRESH_SEED, "fresh"))
        return wanted

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    status: str
    message: str
    problem: str = ""
    candidate: str = ""
    device: str = ""
    dtype: str = "fp32"
    language: str = "none"
    tolerance: str = ""  # Tolerance.describe() of the tolerance the outputs were held to
    trials: list = field(default_factory=list)  # per trial: seed, order, ok, max_abs_err, max_rel_err, rel_l2
    checks: dict = field(default_factory=dict)  # each extra check's outcome (variant shape, determinism, ...)
    pytorch_ops: list = field(default_factory=list)  # compute ops the candidate left to PyTorch
    kernel_launches: int = 0  # the candidate's own launches in one forward
    timing: dict | None = None  # on a GPU: candidate, eager, compile (ms) and speedups
    timing_unavailable: str | None = None
    warnings: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    phase: str = ""  # where it ended: static, reference, compile, first_call, run, timing
    memory: str = ""  # on a GPU: the problem's footprint and how the job spent device memory
    footprint: dict | None = None  # on a GPU: the problem's bytes (memory.Footprint), for the pool's GPU shares
    reference_calls: int = 0  # reference forwards the answer keeper ran for this job; the rest came from its cache
    elapsed_s: float = 0.0
    # seconds by step (keeper: its answers and comparisons; inputs; poison; candidate: its calls outside timing;
    # compile, compile_baseline, first_call, timing); the rest of elapsed_s is the problem's set-up and checks
    step_s: dict = field(default_factory=dict)
    containment: str = ""  # where the candidate ran: the OS sandbox (bubblewrap), or none and what that leaves open
    log_tail: str = ""  # the worker's stderr around a crash

    @property
    def ok(self) -> bool:
        return self.status == Status.CORRECT

    def overrule(self, by: str, message: str) -> bool:
        """Rejected for `by` (a key of OVERRULED_BY), with `message`, where its status may be overruled so; True if
        it was."""
        if self.status not in OVERRULED_BY[by]:
            return False
        self.status, self.message = Status.REJECTED, message
        return True

    @property
    def timed(self) -> "Timing | None":
        """The timing as a Timing, or None when nothing was timed (no GPU, or a failed candidate)."""
        return Timing.of(self.timing)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


BASELINES = {"eager": "eager", "compile": "torch.compile"}  # Verdict.timing's baselines, and their names for people


@dataclass(frozen=True)
class Timing:
    """A verdict's GPU timing (its JSON form is Verdict.timing, as verify.worker.timing_step writes it): the
    candidate's and each baseline's median, and the speedups over eager PyTorch and torch.compile with their 95 %
    intervals. The one place that reads that dict and says it in words."""
    candidate_ms: float
    baseline_ms: dict  # "eager"/"compile" -> median ms, for the baselines that were timed
    speedups: dict  # "eager"/"compile" -> median(baseline) / median(candidate)
    intervals: dict  # "eager"/"compile" -> (low, high), the speedup's bootstrap interval
    missing: dict  # "eager"/"compile" -> why it was not timed ("unavailable: ...")
    host_ms: dict  # "candidate"/"eager"/"compile" -> the host's median time to launch one call, where measured

    @classmethod
    def of(cls, timing: dict | None) -> "Timing | None":
        if not timing or not isinstance(timing.get("candidate"), dict):
            return None
        measured = {b: timing[b]["median_ms"] for b in BASELINES if isinstance(timing.get(b), dict)}
        speedups = {b: timing[f"speedup_vs_{b}"] for b in measured if timing.get(f"speedup_vs_{b}") is not None}
        intervals = {b: tuple(timing.get(f"speedup_vs_{b}_ci") or (speedups[b], speedups[b])) for b in speedups}
        missing = {b: str(timing[b]) for b in BASELINES if timing.get(b) and b not in measured}
        host = {name: timing[name]["host_ms"] for name in ("candidate", *BASELINES)
                if isinstance(timing.get(name), dict) and "host_ms" in timing[name]}
        return cls(timing["candidate"]["median_ms"], measured, speedups, intervals, missing, host)

    def launch_bound(self, which: str = "candidate") -> bool:
        """The host takes longer to launch one call than the GPU takes to run it: a loop of such calls runs at the
        host's pace (the figures here are the GPU's)."""
        ms = self.ms(which)
        return which in self.host_ms and ms is not None and self.host_ms[which] > ms

    def speedup(self, baseline: str = "eager") -> float | None:
        return self.speedups.get(baseline)

    def ms(self, which: str) -> float | None:
        """Median milliseconds of "candidate", "eager" or "compile"."""
        return self.candidate_ms if which == "candidate" else self.baseline_ms.get(which)

    def short(self) -> str:
        """`1.53x eager, 1.55x torch.compile`: the speedups alone."""
        return ", ".join(f"{s:.3g}x {BASELINES[b]}" for b, s in self.speedups.items())

    def describe(self) -> str:
        """`0.05 ms median; eager 0.1 ms (2x); compile 0.08 ms (1.6x)`: every time and speedup."""
        parts = [f"{self.candidate_ms:.4g} ms median"]
        if self.launch_bound():
            parts[0] += f" (launch-bound: the host takes {self.host_ms['candidate']:.4g} ms to launch it)"
        for b in BASELINES:
            if b in self.baseline_ms:
                speed = f" ({self.speedups[b]:.3g}x)" if b in self.speedups else ""
                parts.append(f"{b} {self.baseline_ms[b]:.4g} ms{speed}")
            elif b in self.missing:
                parts.append(f"{b} {self.missing[b]}")
        return "; ".join(parts)


def format_verdict(v: Verdict) -> str:
    """The verdict for people (and for the next prompt): status, checks, timing, and the log where it failed."""
    lines = [f"{v.status}: {v.candidate} vs {v.problem} ({v.device}, {v.dtype}, {v.language})"]
    if v.message:
        lines.append(f"  {v.message}")
    if v.tolerance:
        lines.append(f"  tolerance: {v.tolerance}")
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
    if v.timed:
        lines.append("  timing: " + v.timed.describe())
    elif v.timing_unavailable:
        lines.append(f"  timing: unavailable ({v.timing_unavailable})")
    for warning in v.warnings:
        lines.append(f"  warning: {warning}")
    if v.log_tail and v.status != "correct":
        lines.append("  worker log (tail):")
        lines.extend("    " + line for line in v.log_tail.splitlines()[-12:])
    return "\n".join(lines)

