"""Which strategy steers a lane's next attempt: from what the verifier said about its last one, what the problem is
(only strategies that apply to it are offered), what the kernel to improve already is and where its time goes,
what the lane tried before and what the other lanes are trying at the same step."""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..llm.prompt import Previous, Strategy, strategies
from ..verify.verdict import Status, Verdict


def outcome(previous: Previous | None) -> str:
    """`start`, a verifier status, `no_code` (the answer held no usable kernel) or `duplicate`."""
    if previous is None:
        return "start"
    if previous.status:
        return previous.status
    if previous.verdict is None:
        return Status.NO_CODE
    return previous.verdict.status


def offered(after: str, tags: set[str] | None, language: str) -> list[Strategy]:
    """The strategies answering `after` that fit the language and the problem (`tags` of its profile; None when
    the problem is not known: every strategy)."""
    return [s for s in strategies().values() if after in s.after and s.language in (None, language)
            and (not s.needs or tags is None or tags & set(s.needs))]


# Calls that put products on tensor cores, by what a kernel's code says: Triton's tl.dot; WMMA or mma.sync in CUDA.
# (Relay run, 2026-12-07: "use tensor cores" was asked of lanes whose kernels were tl.dot GEMMs already.)
TENSOR_CORE_CALLS = re.compile(r"\btl\.dot\(|\bwmma::|\bmma\.sync|\bmma_sync\(")


def goals_met(verdict: Verdict | None, code: str = "") -> set[str]:
    """The `met_by` goals (strategies.toml) a verified kernel already meets: `one_launch` when one forward launches
    a single kernel of its own and leaves no compute to PyTorch (the verifier counts launches on a CPU too);
    `tensor_cores` when its code multiplies on tensor cores (TENSOR_CORE_CALLS)."""
    if verdict is None or not verdict.ok:
        return set()
    met = {"one_launch"} if verdict.kernel_launches == 1 and not verdict.pytorch_ops else set()
    return met | ({"tensor_cores"} if TENSOR_CORE_CALLS.search(code or "") else set())


def choose(previous: Previous | None, lane: int, optimizations_done: int, language: str,
           tags: set[str] | None = None, bound: str | None = None, taken: set[str] = frozenset(),
           tried: Mapping[str, int] | None = None, lanes: int | None = None) -> Strategy:
    """A start for a new lane (lane i takes the i-th that applies), a fix after a failure, an optimization after a
    correct kernel. Optimizations skip those whose goal the kernel to improve already meets (`goals_met`), answer
    its measured `bound` where it is known (memory, compute, launch), and rotate, each lane from its own place
    (spread over the rotation when the number of `lanes` is given). The lane's least `tried` strategy comes
    first: none is repeated while another is left. A strategy in `taken` (another lane's at this step) is passed
    over while another as little tried is left. Fixes answer their own lane's code and are never passed over."""
    tried = tried or {}
    seen = outcome(previous)
    if seen == "start":
        return _pick(offered("start", tags, language), lane, taken, {})
    if seen != Status.CORRECT:
        fixes = [s for s in strategies().values() if seen in s.after]
        return fixes[0] if fixes else strategies()["first"]
    table = strategies()
    if previous.verdict.pytorch_ops and "fewer_launches" not in taken and not tried.get("fewer_launches"):
        return table["fewer_launches"]  # compute left in PyTorch comes back first
    every = offered(Status.CORRECT, tags, language)
    met = goals_met(previous.verdict, previous.code)
    rotation = [s for s in every if s.met_by not in met] or every
    answering = [s for s in rotation if bound in s.bounds]
    pool = answering or rotation
    start = (lane * len(pool) // lanes if lanes else lane) + optimizations_done
    return _pick(pool, start, taken, tried)


def _pick(rotation: list[Strategy], start: int, taken: set[str], tried: Mapping[str, int]) -> Strategy:
    """From the rotation's place `start` on: the first of the least tried, one not taken before one taken."""
    order = [rotation[(start + k) % len(rotation)] for k in range(len(rotation))]
    return min(order, key=lambda s: (tried.get(s.name, 0), s.name in taken))  # min keeps the first of equals
