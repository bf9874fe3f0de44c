"""The verifier: is a candidate kernel correct, honest and fast against its PyTorch reference?"""
from __future__ import annotations

from pathlib import Path

from ..problem import Problem, load_problem
from .pool import PoolConfig, WorkerPool, resolve_device
from .verdict import STATUSES, Verdict, VerifyRequest

__all__ = ["PoolConfig", "WorkerPool", "Verdict", "VerifyRequest", "STATUSES", "make_request", "verify_files",
           "resolve_device"]


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


def verify_files(problem_path: str | Path, candidate_path: str | Path, overrides: dict[str, str] | None = None,
                 pool_config: PoolConfig | None = None, **options) -> Verdict:
    """Verify one candidate file against one problem file in a pool of its own."""
    problem = load_problem(problem_path, overrides)
    candidate = Path(candidate_path)
    request = make_request(problem, candidate.read_text(), candidate.stem, **options)
    with WorkerPool(pool_config) as pool:
        return pool.verify(request)
