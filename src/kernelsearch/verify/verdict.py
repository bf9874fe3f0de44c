"""What the verifier is asked (VerifyRequest) and what it answers (Verdict); both cross processes as JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    trials: list = field(default_factory=list)  # per trial: seed, order, ok, max_abs_err, max_rel_err, rel_l2
    checks: dict = field(default_factory=dict)  # each extra check's outcome (variant shape, determinism, ...)
    pytorch_ops: list = field(default_factory=list)  # compute ops the candidate left to PyTorch
    kernel_launches: int = 0  # the candidate's own launches in one forward
    timing: dict | None = None  # on a GPU: candidate, eager, compile (ms) and speedups
    timing_unavailable: str | None = None
    warnings: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    phase: str = ""  # where it ended: static, compile, run, timing
    elapsed_s: float = 0.0
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
