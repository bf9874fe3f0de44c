"""The calls a job makes, each with its checks: inputs from a seed, the reference's answers, the candidate's
outputs (no aliasing of inputs, no broadcast views, no lazy tensors, inputs left as they were)."""
from __future__ import annotations

import contextlib
import time

import torch

from ..errors import Outcome, classify, describe
from ..verdict import Status
from .chunks import CHUNK_ELEMENTS as EQUAL_CHUNK
from .correctness import flatten
from .memory import Poison, held_tensors
from .stopwatch import Stopwatch


class Calls:
    def __init__(self, torch, device: str, dtype, poison: Poison, workdir, clock: Stopwatch | None = None):
        self.torch, self.device, self.dtype, self.poison, self.workdir = torch, device, dtype, poison, workdir
        self.clock = clock or Stopwatch()
        # What the reference itself does is allowed to the candidate: some problems are in-place ops or views.
        self.reference_aliases = self.reference_mutates = self.reference_broadcasts = False
        self.broke_context = False  # a sticky CUDA error was seen: the worker must be replaced
        self.before_call = lambda: None  # the job's heartbeat: each candidate call gets its own time limit

    def reference_behaviour(self) -> tuple[bool, bool, bool]:
        """(aliases an input, mutates an input, returns a broadcast view), seen over this job's reference calls."""
        return self.reference_aliases, self.reference_mutates, self.reference_broadcasts

    def adopt(self, aliases: bool, mutates: bool, broadcasts: bool) -> None:
        """What an earlier job saw the same reference do, when this one takes its answers from the cache."""
        self.reference_aliases |= aliases
        self.reference_mutates |= mutates
        self.reference_broadcasts |= broadcasts

    def fail(self, e: BaseException, where: str) -> Outcome:
        status, message, broken = classify(e, where, self.workdir)
        self.broke_context |= broken
        return Outcome(status, message)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    # ---- inputs --------------------------------------------------------------------------------------------
    def inputs(self, problem, seed: int) -> list:
        """The problem's inputs for a seed, made on the device where `get_inputs` allows (its tensor factories
        under a device context: 6 GiB of torch.randn on the CPU took tens of seconds per trial), else on the CPU
        and moved. Floating tensors are cast to the dtype; integer tensors are left as they are (KernelBench's
        harness casts them too, which breaks index inputs)."""
        with self.clock("inputs"):
            return self._inputs(problem, seed)

    def _inputs(self, problem, seed: int) -> list:
        torch = self.torch
        torch.manual_seed(seed)
        try:
            with torch.device(self.device):
                raw = problem.get_inputs()
        except Exception:
            torch.manual_seed(seed)
            try:
                raw = problem.get_inputs()
            except Exception as e:
                raise Outcome(Status.PROBLEM_ERROR, f"get_inputs() failed: {describe(e)}") from None
        moved = []
        for x in raw:
            if isinstance(x, torch.Tensor):
                x = x.to(self.device)
                if x.is_floating_point():
                    x = x.to(self.dtype)
            moved.append(x)
        return moved

    # ---- the reference -------------------------------------------------------------------------------------
    def reference(self, model, pristine: list) -> tuple[list, float]:
        """The reference's answers on a copy of `pristine`, and the seconds the call took. The answers are the
        job's own: memory the reference keeps (an input, a parameter, a module global) is copied."""
        torch = self.torch
        args = _clone(pristine)
        began = time.perf_counter()
        try:
            with torch.no_grad():
                result = flatten(model(*args))
            self.sync()
        except Exception as e:
            raise Outcome(Status.PROBLEM_ERROR, f"the reference Model failed: {describe(e)}") from None
        seconds = time.perf_counter() - began
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        self.reference_aliases |= any(_overlaps(r, a) for r in result for a in tensors)
        self.reference_mutates |= any(isinstance(a, torch.Tensor) and not same_values(a, p)
                                      for a, p in zip(args, pristine))
        self.reference_broadcasts |= any(0 in r.stride() for r in result if r.numel() > 1)
        held = {t.untyped_storage().data_ptr() for t in tensors + held_tensors(model)}
        answers = [r.clone() if r.untyped_storage().data_ptr() in held else r for r in result]
        self.poison.remember(answers)
        del result, args
        return answers, seconds

    # ---- the candidate -------------------------------------------------------------------------------------
    def candidate(self, model, pristine: list, recorder=None) -> list:
        with self.clock("candidate"):
            return self._candidate(model, pristine, recorder)

    def _candidate(self, model, pristine: list, recorder=None) -> list:
        torch = self.torch
        args = _clone(pristine)
        self.before_call()
        try:
            with torch.no_grad(), recorder or contextlib.nullcontext():
                raw = model(*args)
                self.sync()
        except Exception as e:
            raise self.fail(e, "forward") from None
        for item in raw if isinstance(raw, (tuple, list)) else [raw]:
            if isinstance(item, torch.Tensor) and type(item) is not torch.Tensor:
                raise Outcome(Status.REJECTED, f"forward returned a {type(item).__name__} (a torch.Tensor subclass: "
                                               "its values can be computed lazily, outside the timed call)")
        try:
            outs = flatten(raw)
        except TypeError as e:
            raise Outcome(Status.REJECTED, f"{e} (an object whose work happens later)") from None
        # Its right answers must not outlive it either: the next job (same problem, same seeds) could be handed
        # this memory. Poisoned at clean-up.
        self.poison.remember(outs)
        for j, out in enumerate(outs):
            for i, arg in enumerate(args):
                if not self.reference_aliases and isinstance(arg, torch.Tensor) and _overlaps(out, arg):
                    raise Outcome(Status.REJECTED, f"output {j} shares memory with input {i} (aliasing an input)")
            if not self.reference_broadcasts and any(st == 0 and n > 1 for st, n in zip(out.stride(), out.shape)):
                raise Outcome(Status.REJECTED, f"output {j} is a broadcast view (stride 0): most of it was never "
                                               "computed")
        for i, (arg, original) in enumerate(zip(args, pristine)):
            if not self.reference_mutates and isinstance(arg, torch.Tensor) and not same_values(arg, original):
                raise Outcome(Status.REJECTED, f"forward modified its input {i} in place")
        return outs


def _clone(values: list) -> list:
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def same_values(a, b) -> bool:
    """Equal shape, dtype and values (NaN equal to NaN), compared in slices so no full-size temporary is made."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):  # one pass, one sync (6 GiB inputs took ~0.3 s a call in slices); NaN falls through
        return True
    if a.numel() <= EQUAL_CHUNK or not (a.is_contiguous() and b.is_contiguous()):
        return _equal(a, b)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    return all(_equal(flat_a[i:i + EQUAL_CHUNK], flat_b[i:i + EQUAL_CHUNK]) for i in range(0, a.numel(), EQUAL_CHUNK))


def _equal(a, b) -> bool:
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return bool(torch.equal(a, b))


def _overlaps(a, b) -> bool:
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    a0, b0 = a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr()
    return a0 < b0 + b.untyped_storage().nbytes() and b0 < a0 + a.untyped_storage().nbytes()
