"""How close an output must be to the reference: per element |out - ref| <= atol + rtol * |ref|.

The one owner of the tolerance numbers. A profile gives atol = rtol per dtype; --atol / --rtol override either.
No torch here: the command line, the prompt and the reports read these without starting it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DTYPES = ("fp32", "fp16", "bf16")
PROFILES = {
    # KernelBench's harness today: fp32 1e-4, fp16/bf16 1e-2.
    "kernelbench": {"fp32": 1e-4, "fp16": 1e-2, "bf16": 1e-2},
    # KernelBench v0 and v0.1: 1e-2 everywhere, the tolerance behind the published figures (R1 with NVIDIA's
    # verifier loop: 100 % of level 1 and 96 % of level 2 correct). 100x looser than today's for fp32.
    "kernelbench-v0": {"fp32": 1e-2, "fp16": 1e-2, "bf16": 1e-2},
}
DEFAULT_PROFILE = "kernelbench"


class ToleranceError(ValueError):
    """A profile or value that cannot be used (the command line turns it into a one-line usage error)."""


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    profile: str = DEFAULT_PROFILE
    dtype: str = "fp32"

    def describe(self) -> str:
        """One line, e.g. `kernelbench (fp32): atol=1e-4, rtol=1e-4`; a value set by hand says so."""
        base = PROFILES.get(self.profile, {}).get(self.dtype)
        parts = [f"{name}={short_number(value)}" + ("" if value == base else " (set)")
                 for name, value in (("atol", self.atol), ("rtol", self.rtol))]
        return f"{self.profile} ({self.dtype}): {', '.join(parts)}"


def resolve_tolerance(profile: str = DEFAULT_PROFILE, dtype: str = "fp32", atol: float | None = None,
                      rtol: float | None = None) -> Tolerance:
    """The tolerance in force for `dtype` under `profile`, with `atol`/`rtol` (when given) replacing its values."""
    check_settings(profile, atol, rtol)
    if dtype not in DTYPES:
        raise ToleranceError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    default = PROFILES[profile][dtype]
    return Tolerance(atol=default if atol is None else float(atol), rtol=default if rtol is None else float(rtol),
                     profile=profile, dtype=dtype)


def check_settings(profile: str, atol: float | None = None, rtol: float | None = None) -> None:
    """Raise ToleranceError (one line) for an unknown profile or a negative or non-finite atol/rtol."""
    if profile not in PROFILES:
        raise ToleranceError(f"unknown tolerance profile {profile!r} (known: {', '.join(PROFILES)})")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ToleranceError(f"{name} must be a finite number >= 0, got {value!r}")


def describe_settings(profile: str = DEFAULT_PROFILE, atol: float | None = None, rtol: float | None = None) -> str:
    """A run's tolerance for every dtype on one line (for a bench's summary), e.g.
    `kernelbench: fp32 atol=1e-4, rtol=1e-4; fp16 atol=1e-2, rtol=1e-2; bf16 atol=1e-2, rtol=1e-2`."""
    values = [resolve_tolerance(profile, dtype, atol, rtol) for dtype in DTYPES]
    set_by_hand = [name for name, value in (("atol", atol), ("rtol", rtol)) if value is not None]
    return (f"{profile}" + (f" ({' and '.join(set_by_hand)} set)" if set_by_hand else "") + ": "
            + "; ".join(f"{t.dtype} atol={short_number(t.atol)}, rtol={short_number(t.rtol)}" for t in values))


def profile_values(profile: str) -> str:
    """A profile's atol = rtol per dtype in a few words (for help texts): `fp32 1e-4, fp16/bf16 1e-2`."""
    dtypes_by_value: dict[float, list[str]] = {}
    for dtype, value in PROFILES[profile].items():
        dtypes_by_value.setdefault(value, []).append(dtype)
    if len(dtypes_by_value) == 1:
        return f"{short_number(next(iter(dtypes_by_value)))} for every dtype"
    return ", ".join(f"{'/'.join(dtypes)} {short_number(value)}" for value, dtypes in dtypes_by_value.items())


def short_number(value: float) -> str:
    """1e-4 rather than 0.0001 (tolerances are read as powers of ten); 0.5 and 2 as they are."""
    if value == 0 or 0.1 <= abs(value) < 1e4:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
