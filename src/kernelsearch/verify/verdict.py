"""What the verifier is asked (VerifyRequest) and what it answers (Verdict); both cross processes as JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .tolerance import DEFAULT_PROFILE, Tolerance, resolve_tolerance

# Candidate outcomes. `compiled` is a CUDA candidate checked on a machine without a GPU: it built, nothing ran.
# `problem_error` is the problem's fault (or too large for the CPU interpreter), not the candidate's.
STATUSES = ("correct", "compile_error", "runtime_error", "timeout", "incorrect", "rejected", "compiled",
            "problem_error")


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
    tolerance: str = DEFAULT_PROFILE  # a profile of tolerance.PROFILES; atol/rtol, when set, replace its values
    atol: float | None = None
    rtol: float | None = None

    def resolved_tolerance(self) -> Tolerance:
        return resolve_tolerance(self.tolerance, self.dtype, self.atol, self.rtol)

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
    reference_calls: int = 0  # reference forwards this job ran; the other answers came from the worker's cache
    elapsed_s: float = 0.0
    containment: str = ""  # where the candidate ran: the OS sandbox (bubblewrap), or none and what that leaves open
    log_tail: str = ""  # the worker's stderr around a crash

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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

