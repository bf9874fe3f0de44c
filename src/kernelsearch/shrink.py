"""`--shrink auto`: a problem too large for the CPU interpreter, its size constants scaled down until it fits.

The check runs before the first model call, with the verifier's own estimate (verify.worker.work_estimate) and limits
(VerifyRequest's), so that a search never spends a call on a problem the worker will refuse. Which constants are
sizes, and what each must stay a multiple of, is the second shape's rule (Problem.resized, sizes.py,
constraints.py); each step halves every size, odd ones to an odd value, and a size whose halving breaks the
model (a convolution's input smaller than its kernel) stays. The result is a set of `--set` values, so a shrunk
problem loads, resumes and reports exactly as a problem shrunk by hand, and the prompt's size note
(llm.prompt.size_note, from Problem.overrides) tells the model that the original sizes are the target."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, fields
from types import SimpleNamespace

from .problem import Problem, ProblemError, load_problem
from .verify.verdict import VerifyRequest

SHRINK_MODES = ("off", "auto")
# How far below the worker's limits a shrunk problem lands. Verifying a pass-through candidate (one copy kernel,
# BLOCK 1024) in the interpreter on 2 cores took 25 s at the limit itself (L1 19_ReLU and 1_Square_matmul), 13 s
# and 7 s at a quarter, 8 s and 3.4 s at a sixteenth; a model's kernel with smaller blocks runs more programs, each
# as costly, and a search verifies dozens of them: a sixteenth of each limit.
TARGET_FRACTION = 1 / 16
MAX_STEPS = 64  # halvings of all sizes; 2^64 is far beyond any KernelBench problem


@dataclass(frozen=True)
class Work:
    """One forward's work as the worker estimates it, and whether the model ran on the meta device at all."""
    elements: int
    flops: float
    runs: bool


def interpreter_limits() -> tuple[int, float]:
    """The worker's limits for the CPU interpreter (tensor elements, FLOPs per call): VerifyRequest's defaults."""
    defaults = {f.name: f.default for f in fields(VerifyRequest)}
    return defaults["max_cpu_elements"], defaults["max_cpu_flops"]


def measure(source: str) -> Work:
    """The work of one call of the problem in `source`, on the meta device (nothing allocated, nothing run)."""
    # torch and triton stay out of the search's process until a problem on the CPU is measured
    import torch

    from .verify.worker.work_estimate import estimate_work

    namespace: dict = {"__name__": "kernelsearch_problem"}
    try:
        with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<problem>", "exec"), namespace)
    except Exception as e:
        raise ProblemError(f"the problem failed to load: {type(e).__name__}: {e}") from None
    module = SimpleNamespace(**namespace)
    elements, flops = estimate_work(module)
    return Work(elements, flops, _runs(module))


def _runs(module) -> bool:
    import torch

    try:
        with torch.device("meta"), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            module.Model(*module.get_init_inputs())(*module.get_inputs())
        return True
    except Exception:
        return False


def fits(work: Work, fraction: float = 1.0) -> bool:
    max_elements, max_flops = interpreter_limits()
    return work.elements <= max_elements * fraction and work.flops <= max_flops * fraction


def too_large(problem: Problem) -> str | None:
    """Why the worker would refuse `problem` on the CPU (one line), or None when it fits."""
    work = measure(problem.source)
    if fits(work):
        return None
    max_elements, max_flops = interpreter_limits()
    return (f"{problem.name} is too large for the CPU interpreter: {work.elements:.3g} tensor elements and "
            f"{work.flops:.3g} FLOPs per call (limits {max_elements:.3g} and {max_flops:.3g}); scale it down with "
            f"--shrink auto or --set NAME=VALUE, or run on a GPU")


def half(value: int, multiple: int = 1) -> int:
    """About half of a size: odd stays odd, a multiple of `multiple` stays one, never below 2 (3 when odd), since
    1 is a broadcast dimension."""
    if value % multiple:
        multiple = 1  # the problem breaks the rule read from its model: do not enforce it (as sizes.second_value)
    units = value // multiple
    new = units // 2
    if units % 2 and new % 2 == 0:
        new += 1
    new *= multiple
    floor = 3 if value % 2 else 2
    return new if floor <= new < value else value


def shrink(problem: Problem, only: set[str] | None = None,
           fraction: float = TARGET_FRACTION) -> dict[str, tuple[object, object]]:
    """The sizes that make `problem` fit the interpreter (with room: `fraction` of its limits): NAME -> (old,
    new), empty when it fits already. Raises ProblemError when halving every size it may change is not enough."""
    start = measure(problem.source)
    if fits(start, fraction):
        return {}
    halvings: dict[str, int] = {}
    frozen: set[str] = set()  # sizes whose next halving breaks the model

    def resize(counts: dict[str, int]):
        def new_size(name: str, value: int, multiple: int) -> int:
            for _ in range(counts.get(name, 0)):
                value = half(value, multiple)
            return value
        return problem.resized(new_size, only)

    def halved(names) -> dict[str, int]:
        return {**halvings, **{n: halvings.get(n, 0) + 1 for n in names}}

    names = set(_changes(resize({n: 1 for n in problem.constants})))  # the constants that are sizes
    for _ in range(MAX_STEPS):
        growing = [n for n in sorted(names - frozen) if _changes(resize(halved([n]))) != _changes(resize(halvings))]
        if not growing:
            break
        proposal = resize(halved(growing))
        work = measure(proposal.source)
        if start.runs and not work.runs:  # one of them broke the model: find which, and keep it where it is
            broken = [n for n in growing if not measure(resize(halved([n])).source).runs]
            frozen.update(broken or growing)
            continue
        halvings = halved(growing)
        if fits(work, fraction):
            return _changes(proposal)
    reached = resize(halvings)
    now = measure(reached.source if reached else problem.source)
    if fits(now):  # short of the target, inside the limit: as small as the model allows
        return _changes(reached)
    raise ProblemError(f"{problem.name}: --shrink auto cannot make it fit the CPU interpreter: with every size it may "
                       f"change halved as far as the model allows, one call still touches {now.elements:.3g} tensor "
                       f"elements and {now.flops:.3g} FLOPs; run it on a GPU")


def _changes(variant) -> dict[str, tuple[object, object]]:
    return dict(variant.changes) if variant else {}


def shrunk(problem: Problem, changes: dict[str, tuple[object, object]], overrides: dict[str, str]) -> Problem:
    """`problem` loaded again with the shrink's sizes as `--set` values on top of the user's own."""
    if not changes:
        return problem
    loaded = load_problem(problem.path, {**overrides, **as_overrides(changes)})
    loaded.name = problem.name
    return loaded


def as_overrides(changes: dict[str, tuple[object, object]]) -> dict[str, str]:
    return {name: repr(new) for name, (_, new) in changes.items()}


def fit_interpreter(problem: Problem, mode: str, overrides: dict[str, str],
                    only: set[str] | None = None) -> tuple[Problem, dict[str, tuple[object, object]]]:
    """The problem as a search on the CPU runs it, and the sizes changed: with mode "auto" scaled down to the
    target (TARGET_FRACTION of the limits) whether it is over the limits or just under them (L3 4_LeNet5, 4.3M
    elements and 3.4 GFLOP against 16.8M and 20G, was searched at full size: its first kernels ran past the 300 s
    limit of a first call in a relay run, where the same problem over the limits would have been shrunk to a
    sixteenth); without it, unchanged when it fits, else a one-line ProblemError (before any model call)."""
    reason = too_large(problem)
    if mode != "auto":
        if reason is not None:
            raise ProblemError(reason)
        return problem, {}
    changes = shrink(problem, only)
    return shrunk(problem, changes, overrides), changes
