"""The verifier: is a candidate kernel correct, honest and fast against its PyTorch reference?"""
from __future__ import annotations

from ..problem import Problem
from .pool import PoolConfig, WorkerPool, resolve_device
from .verdict import STATUSES, Verdict, VerifyRequest

__all__ = ["PoolConfig", "WorkerPool", "Verdict", "VerifyRequest", "STATUSES", "make_request", "resolve_device"]


def make_request(problem: Problem, candidate_source: str, candidate_name: str = "candidate",
                 variant_names: set[str] | None = None, **options) -> VerifyRequest:
    """A request for one candidate against a loaded problem, with the problem's second shape attached
    (changing only `variant_names` when given)."""
    variant = problem.variant(variant_names)
    return VerifyRequest(
        problem_source=problem.source, candidate_source=candidate_source, problem_name=problem.name,
        candidate_name=candidate_name, variant_source=variant[0] if variant else None,
        variant_changes={k: list(v) for k, v in variant[1].items()} if variant else {},
        overrides={k: list(v) for k, v in problem.overrides.items()}, **options)

