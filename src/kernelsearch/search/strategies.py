"""Which strategy steers a lane's next attempt, from what the verifier said about its last one."""
from __future__ import annotations

from ..llm.prompt import Previous, Strategy, strategies


def outcome(previous: Previous | None) -> str:
    """`start`, a verifier status, or `no_code` (the answer held no usable kernel)."""
    if previous is None:
        return "start"
    if previous.verdict is None:
        return "no_code"
    return previous.verdict.status


def choose(previous: Previous | None, lane: int, optimizations_done: int, language: str) -> Strategy:
    """A fix after a failure; after a correct kernel, an optimization. Optimizations rotate, and each lane starts
    the rotation at a different place so that concurrent lanes try different things."""
    table = strategies()
    seen = outcome(previous)
    if seen != "correct":
        fixes = [s for s in table.values() if seen in s.after]
        return fixes[0] if fixes else table["first"]
    verdict = previous.verdict
    if verdict.pytorch_ops:  # compute left in PyTorch is the first thing to take back
        return table["fewer_launches"]
    rotation = [s for s in table.values() if "correct" in s.after and s.language in (None, language)]
    return rotation[(lane + optimizations_done) % len(rotation)]
