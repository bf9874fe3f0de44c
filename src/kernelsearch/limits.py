"""The limits settings are held to, as a flag or in a --config file alike: one rule, refused in the same words."""
from __future__ import annotations


def count_problem(value: int) -> str | None:
    """Every count (trials, lanes, attempts, tokens, calls in flight) is at least 1; what is wrong, or None."""
    return f"must be at least 1, got {value}" if value < 1 else None


def positive_problem(value: float) -> str | None:
    """Every duration and ratio (budget, timeouts, target speedup) is more than 0; what is wrong, or None."""
    return f"must be positive, got {value:g}" if not value > 0 else None
