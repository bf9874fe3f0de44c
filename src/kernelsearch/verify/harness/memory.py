"""The memory guard: a budget drawn from the problem's footprint, and poison so no freed answer can be read. torch is
imported where it is used: the pool plans its GPU shares with this module and never loads torch."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..errors import Outcome
from ..verdict import Status
from .stopwatch import Stopwatch

GiB = 1 << 30
# Share of the device memory free at a job's start that the plan may fill: cuBLAS/cuDNN workspaces, Triton's
# and torch.compile's buffers and allocator fragmentation take the rest.
USABLE_FRACTION = 0.85
# What our own work needs beside the problem's tensors: chunked comparisons (2**24 elements in float64, a few
# temporaries) and the 256 MiB L2 flush of the timer.
VERIFIER_RESERVE = 1 * GiB
MAX_TIMING_SETS = 4  # input sets rotated during timing, so no cache keyed on inputs sees the same data twice
# A cap on the memory a job may plan for, in bytes (also on the CPU, where there is no device to ask): for
# tests of the memory plan, and for sharing a GPU with other work.
MEMORY_BUDGET = int(os.environ.get("KS_MEMORY_BUDGET_BYTES") or 0)


@dataclass
class Footprint:
    """Bytes of one forward of the problem, measured on its first reference call."""
    inputs: int
    outputs: int
    params: int
    scratch: int  # the reference's own peak beyond its inputs, outputs and parameters (intermediate tensors)

    def describe(self) -> str:
        return (f"inputs {_gib(self.inputs)}, outputs {_gib(self.outputs)}, parameters {_gib(self.params)}, "
                f"intermediates {_gib(self.scratch)}")


@dataclass
class MemoryPlan:
    """How this job spends device memory. The minimum is one trial (`one_trial`); the rest is spent on speed."""
    usable: int  # bytes this job may fill
    footprint: Footprint
    timing_sets: int = MAX_TIMING_SETS

    def describe(self) -> str:
        return f"{self.footprint.describe()}; {_gib(self.usable)} usable; {self.timing_sets} timing input set(s)"


def one_trial(f: Footprint) -> int:
    """Device bytes of one trial: both models, the pristine inputs and the call's copy of them (the mutation check
    compares the two), the reference's answer and the candidate's output, both sides' intermediates, and the
    verifier's own reserve."""
    return 2 * f.params + 2 * f.inputs + 2 * f.outputs + 2 * f.scratch + VERIFIER_RESERVE


def answers_fit_on_device(f: Footprint, free_bytes: int) -> bool:
    """Whether the answer keeper may keep a job's answers on the device, where the outputs are compared in place,
    instead of in host memory: one trial and one more answer must fit (the keeper holds two at once, the first two
    trials' answers, while trial 0 runs). At KernelBench's sizes every problem does on an 80 GB card; 19_ReLU's
    6 GiB answers held in host memory took ~3 s a comparison to bring back, seven comparisons a job."""
    return one_trial(f) + f.outputs <= int(free_bytes * USABLE_FRACTION)


def plan_memory(footprint: Footprint, free_bytes: int, held_now: int = 0, keeper_holds: int = 0) -> MemoryPlan:
    """A plan for a GPU job, or problem_error with the numbers when even one trial cannot fit.

    `free_bytes`: free device memory plus what the allocator caches; `held_now`: what the worker already holds
    (the candidate's side of the job so far) and `keeper_holds`: the answers the answer keeper holds on the device
    now; both are part of the need below, not extra. The keeper's answers beyond the one a trial counts are gone
    by the time the timing input sets are made."""
    f = footprint
    usable = int((free_bytes + held_now + keeper_holds) * USABLE_FRACTION)
    trial = one_trial(f) + max(0, keeper_holds - f.outputs)
    if trial > usable:
        raise Outcome(Status.PROBLEM_ERROR, (
            f"the problem does not fit this device: one trial needs about {_gib(trial)} ({f.describe()}, "
            f"for the reference and the candidate side by side), {_gib(usable)} of device memory is usable"))
    plan = MemoryPlan(usable=usable, footprint=f)
    spare = usable - (one_trial(f) - 2 * f.inputs)
    plan.timing_sets = max(1, min(MAX_TIMING_SETS, spare // max(1, f.inputs)))
    return plan


def plans_memory(device: str) -> bool:
    """A GPU job plans its device memory; a CPU job only under an artificial budget (tests)."""
    return device == "cuda" or bool(MEMORY_BUDGET)


def memory_now(device: str, budget: int = 0, keeper_holds: int = 0) -> tuple[int, int]:
    """(free bytes, bytes this process already holds) for a job's memory plan, within its `budget` where it has one
    (KS_MEMORY_BUDGET_BYTES; its share of a GPU it runs on beside other jobs), which the keeper's answers on the
    device (`keeper_holds`) count against too."""
    import torch
    if device != "cuda":
        return MEMORY_BUDGET, 0
    limit = min(b for b in (MEMORY_BUDGET, budget, 1 << 62) if b)
    held = torch.cuda.memory_allocated()
    return min(device_free_bytes(), max(0, limit - held - keeper_holds)), held


def tensor_bytes(values) -> int:
    import torch
    return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))


class Poison:
    """Fills memory about to be freed, and the allocator's free blocks, with 0xFF (NaN as floats): an output
    that was never written reads as NaN instead of as a stale right answer left by the reference."""

    def __init__(self, device: str, clock: Stopwatch | None = None):
        self.device = device
        self.clock = clock or Stopwatch()
        self.freed_sizes: list[int] = []  # CPU: sizes of answers freed in this job, to claim their blocks again

    def remember(self, tensors) -> None:
        self.freed_sizes = (self.freed_sizes + [t.untyped_storage().nbytes() for t in tensors])[-64:]

    def scrub(self, tensors, protect=()) -> None:
        """Overwrite tensors about to be freed; storages shared with `protect` are left alone. In place: the
        footprint does not grow."""
        import torch
        kept = {t.untyped_storage().data_ptr() for t in protect if isinstance(t, torch.Tensor)}
        with self.clock("poison"):
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.numel() and t.untyped_storage().data_ptr() not in kept:
                    t.untyped_storage().fill_(255)

    def fill_free_memory(self) -> None:
        with self.clock("poison"):
            self._fill_free_memory()

    def _fill_free_memory(self) -> None:
        import torch
        if self.device == "cuda":
            # the caching allocator's inactive blocks, largest first, each claimed whole and filled
            sizes = sorted((b["size"] for seg in torch.cuda.memory_snapshot() for b in seg["blocks"]
                            if b["state"] == "inactive"), reverse=True)
            held = [torch.empty(s, dtype=torch.uint8, device="cuda").fill_(255) for s in sizes]
            torch.cuda.synchronize()
        else:
            # glibc hands a freed block of the same size straight back out: hold one block for every answer
            # freed so far in this job (seen: the pre-run's copy of trial 0's answer leaking to trial 0), then a
            # ladder of small sizes, all at once, then free them poisoned.
            sizes = self.freed_sizes + [1 << k for k in range(6, 17)]
            held = [torch.empty(s, dtype=torch.uint8).fill_(255) for s in sizes]
        del held


def held_tensors(model) -> list:
    """Tensors a model holds on to: parameters, buffers, attributes and its module's globals."""
    import torch
    found = [*model.parameters(), *model.buffers()]
    module = sys.modules.get(type(model).__module__)
    for value in [*vars(model).values(), *(vars(module).values() if module else [])]:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        found += [t for t in items if isinstance(t, torch.Tensor)]
    return found


def device_free_bytes() -> int:
    """Free device memory, counting what torch's allocator holds but does not use."""
    import torch
    free, _ = torch.cuda.mem_get_info()
    return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB // 100 else f"{n / (1 << 20):.1f} MiB"
