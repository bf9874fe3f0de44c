"""A search's settings (SolveConfig): the budget, the lanes, the language, the limits, and the rules and tolerance
a kernel is judged under. The run directory saves them (run_dir.py), config.py builds them from a file and flags."""
from __future__ import annotations

from dataclasses import dataclass

from ..verify.tolerance import DEFAULT_PROFILE, Tolerance, resolve_tolerance
from ..verify.verdict import RULES

# The settings a kernel is judged under: SolveConfig's and VerifyRequest's names for them
JUDGING_FIELDS = ("rules", "tolerance", "atol", "rtol")


@dataclass
class SolveConfig:
    budget_s: float = 900.0  # wall clock for the whole search (15 minutes per problem is the reference)
    lanes: int = 4
    language: str = "triton"  # triton | cuda
    dtype: str = "fp32"
    rules: str = RULES[0]  # kernelsearch | kernelbench: judged as KernelBench does (verdict.KERNELBENCH_PASSING)
    tolerance: str = DEFAULT_PROFILE  # verify.tolerance's profile; atol/rtol, when set, replace its values
    atol: float | None = None
    rtol: float | None = None
    device: str = "auto"
    strict: bool = False
    trials: int = 5
    seed: int = 42
    max_attempts: int | None = None  # over all lanes and sessions
    max_tokens: int | None = None  # completion tokens over all lanes and sessions
    target_speedup: float | None = None  # stop once the best kernel is this much faster than eager PyTorch
    restart_after: int = 3  # failed attempts in a row before a lane starts over from the best kernel
    compile_timeout_s: float = 300.0
    run_timeout_s: float = 120.0
    shrink: str = "off"  # off | auto: scale a problem too large for the CPU interpreter down until it fits (shrink.py)

    def judging(self) -> dict:
        """rules, tolerance, atol and rtol, as VerifyRequest takes them."""
        return {name: getattr(self, name) for name in JUDGING_FIELDS}

    def resolved_tolerance(self) -> Tolerance:
        return resolve_tolerance(self.tolerance, self.dtype, self.atol, self.rtol)
