"""The verifier: is a candidate kernel correct, honest and fast against its PyTorch reference?

The life of a verdict, across three processes:

1. The caller's process (the pool, pool/): `WorkerPool.submit(request)` (worker_pool.py) queues a VerifyRequest
   (verdict.py); a CUDA C++ candidate is first built off the GPU (build_stage.py starts a builder,
   worker/builder.py). A free worker's thread (worker_process.py) waits for its turn on the GPU where workers share
   one (gpu_share.py), and sends the job line to both processes of its pair: the answer keeper (keeper_process.py
   started it) and the worker.
2. The worker's process (worker/, inside the OS sandbox and the audit hook of containment/): process.py reads the
   line and runs a Job (job.py): the static checks (checks/), the problem loaded and built (harness/modules.py),
   the keeper's first answers and the memory plan (harness/memory.py), the candidate imported and its first call,
   the trials, the extra checks (extra_checks.py), the timing (timing_step.py, harness/gpu_timing.py). Each
   candidate call goes through harness/calls.py; its outputs go to the keeper over keeper/link.py.
3. The answer keeper's process (keeper/process.py, in a sandbox of its own): it takes the same line from the pool,
   builds the reference, computes its answers and compares the worker's outputs with them (harness/correctness.py),
   reporting each comparison to the pool.

The worker sends its verdict back (the job wrote it; the worker may overrule it, verdict.OVERRULED_BY); the pool
holds a `correct` against the keeper's record (keeper_process.unbacked), adds where the candidate ran
(containment/sandbox.containment) and settles the caller's future. errors.py says how a failure becomes a status;
tolerance.py, how close is correct."""
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

