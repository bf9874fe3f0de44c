"""Checks made while the candidate runs: its own kernel launches, the PyTorch ops it calls, harness integrity."""
from __future__ import annotations

import threading
import time
from collections import Counter

import torch
from torch._library.custom_ops import OPDEFS  # a dict: qualified name -> a custom op's definition
from torch.utils._python_dispatch import TorchDispatchMode

from ..checks.custom_ops import LIBRARY_NAMESPACES, TORCH_NAMESPACES

# aten ops that only allocate, view, copy or convert: launch glue a candidate may keep in PyTorch.
GLUE_OPS = {
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "new_zeros",
    "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "scalar_tensor", "arange", "lift_fresh",
    "lift_fresh_copy", "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "t", "expand",
    "squeeze", "unsqueeze", "flatten", "unflatten", "select", "slice", "narrow", "as_strided", "alias", "detach",
    "split", "split_with_sizes", "chunk", "unbind", "view_as", "diagonal", "movedim", "clone", "copy_", "_to_copy",
    "to", "fill_", "zero_", "resize_", "set_", "_local_scalar_dense", "item", "contiguous", "is_same_size",
    "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "_has_compatible_shallow_copy_type", "equal",
    "is_nonzero", "unsafe_split", "unsafe_chunk",
}


class LaunchCounter:
    """Counts launches of the candidate's own kernels: Triton JIT/interpreted functions and functions of
    modules built by load_inline. Installed in the worker before any candidate is imported."""

    def __init__(self):
        self.triton = 0
        self.extension = 0
        self.depth = 0  # >0 inside a Triton launch: the op recorder ignores the interpreter's internals
        # The contribution check (extra_checks.check_contribution): Triton launches are not made, and a load_inline
        # function's tensors are poisoned once it returns; one that returns none is counted as unskippable.
        self.skipping = False
        self.unskippable = 0

    @property
    def total(self) -> int:
        return self.triton + self.extension

    def reset(self) -> None:
        self.triton = self.extension = 0

    def install(self, prebuilt=None) -> None:
        """Wrap Triton's launches and load_inline; `prebuilt` (cuda_builds.Prebuilt) answers load_inline calls with
        the modules the pool's build stage made, where it has them."""
        import triton.runtime.jit as jit

        classes = [jit.JITFunction]
        try:
            from triton.runtime.interpreter import InterpretedFunction
            classes.append(InterpretedFunction)
        except ImportError:
            pass
        for cls in classes:
            cls.run = self._wrap(cls.run)

        import torch.utils.cpp_extension as cpp_extension
        original_load_inline = cpp_extension.load_inline
        counter = self

        def load_inline(*args, **kwargs):
            module = prebuilt.load(original_load_inline, args, kwargs) if prebuilt is not None else None
            return _CountedExtension(module or original_load_inline(*args, **kwargs), counter)

        load_inline.__wrapped__ = original_load_inline
        cpp_extension.load_inline = load_inline

    def _wrap(self, run):
        counter = self

        def counted_run(self_, *args, **kwargs):
            if not kwargs.get("warmup", False):
                counter.triton += 1
                if counter.skipping:
                    return None
            counter.depth += 1
            try:
                return run(self_, *args, **kwargs)
            finally:
                counter.depth -= 1

        counted_run.__wrapped__ = run
        return counted_run


class _CountedExtension:
    """Stands in for a load_inline module: each function call counts as a launch of the candidate's code."""

    def __init__(self, module, counter: LaunchCounter):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_counter", counter)

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if not callable(value):
            return value
        counter = self._counter

        def call(*args, **kwargs):
            counter.extension += 1
            result = value(*args, **kwargs)
            if counter.skipping:
                tensors = [t for t in (result if isinstance(result, (tuple, list)) else [result])
                           if isinstance(t, torch.Tensor)]
                for t in tensors:
                    if t.numel():
                        t.untyped_storage().fill_(255)
                counter.unskippable += not tensors
            return result

        return call


# Operator namespaces that are not a candidate's: torch's and the libraries' (the static rule's lists), and whatever
# the dispatcher holds when the worker starts, before any candidate is imported.
NOT_CANDIDATES = TORCH_NAMESPACES | LIBRARY_NAMESPACES | {name.split("::")[0]
                                                         for name in torch._C._dispatch_get_all_op_names()}


def candidate_op_body(func):
    """The Python body of an operator a candidate made with torch.library.custom_op, or None for torch's own."""
    opdef = OPDEFS.get(func._schema.name) if func.namespace not in NOT_CANDIDATES else None
    return opdef._init_fn if opdef is not None else None


def dispatch_seen(mode: TorchDispatchMode, func, args, kwargs, body):
    """Run `func` for a dispatch mode. A candidate's own operator reaches the mode as one call, and the mode is off
    while it handles a call, so the ops of the operator's body would pass unseen (torch.matmul inside one was
    missing from "PyTorch still computes", and its empty_like was never poisoned): run that body under the mode."""
    if body is None:
        return func(*args, **(kwargs or {}))
    with mode:
        return body(*args, **(kwargs or {}))


class OpRecorder(TorchDispatchMode):
    """Records the aten ops a forward runs outside the candidate's own kernels."""

    def __init__(self, counter: LaunchCounter):
        super().__init__()
        self.counter = counter
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # Inside a Triton launch the interpreter's own copies are not the candidate's. Inside a load_inline
        # function they are: at::matmul called from C++ is still PyTorch doing the work.
        body = candidate_op_body(func)
        if self.counter.depth == 0 and body is None:  # a candidate operator's body's ops are counted instead
            self.ops[func.overloadpacket.__name__] += 1
        return dispatch_seen(self, func, args, kwargs, body)

    def compute_ops(self) -> list[str]:
        """aten ops that do arithmetic rather than glue, by name (in-place forms folded into their op)."""
        names = {op.rstrip("_") if op.endswith("_") and not op.startswith("_") else op for op in self.ops}
        return sorted(op for op in names if op not in GLUE_OPS and op + "_" not in GLUE_OPS)


class FreshAllocationsPoisoned(TorchDispatchMode):
    """Every tensor made uninitialized (empty, empty_like, ...) filled with 0xFF as it is made, for the contribution
    check's replay: a skipped kernel's output must read as poison, not as a block the same call freed a moment
    before (81_Gemm_Swish_Divide_Clamp_Tanh_Clamp's last clamp changes nothing: its output's block held the same
    values as the tanh's, freed just before, and a skipped copy kernel looked like no kernel at all). Allocations
    inside load_inline functions go through the dispatcher too."""

    UNINITIALIZED = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        made = dispatch_seen(self, func, args, kwargs, candidate_op_body(func))
        if func.overloadpacket.__name__ in self.UNINITIALIZED and isinstance(made, torch.Tensor) and made.numel():
            made.untyped_storage().fill_(255)
        return made


class Integrity:
    """Identity of everything the harness relies on, taken before the candidate is imported and compared after
    each step it runs: a candidate that patched a timer, a comparison or the launch counter is caught."""

    def __init__(self, extra_modules: list = ()):
        import triton.runtime.jit as jit
        self.watched = {
            "time.perf_counter": (time, "perf_counter"), "time.time": (time, "time"),
            "time.monotonic": (time, "monotonic"), "time.perf_counter_ns": (time, "perf_counter_ns"),
            "torch.cuda.synchronize": (torch.cuda, "synchronize"), "torch.cuda.Event": (torch.cuda, "Event"),
            "torch.cuda.Event.record": (torch.cuda.Event, "record"),
            "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time"),
            "torch.cuda.Event.synchronize": (torch.cuda.Event, "synchronize"),
            "torch.cuda.current_stream": (torch.cuda, "current_stream"),
            "torch.allclose": (torch, "allclose"), "torch.isclose": (torch, "isclose"),
            "torch.equal": (torch, "equal"), "torch.manual_seed": (torch, "manual_seed"),
            "torch.Tensor.__eq__": (torch.Tensor, "__eq__"), "torch.Tensor.abs": (torch.Tensor, "abs"),
            "torch.Tensor.clone": (torch.Tensor, "clone"), "torch.Tensor.copy_": (torch.Tensor, "copy_"),
            "torch.nn.Module.__call__": (torch.nn.Module, "__call__"),
            "triton.JITFunction.run": (jit.JITFunction, "run"),
        }
        try:
            from triton.runtime.interpreter import InterpretedFunction
            self.watched["triton.InterpretedFunction.run"] = (InterpretedFunction, "run")
        except ImportError:
            pass
        import torch.utils.cpp_extension as cpp_extension
        self.watched["torch.utils.cpp_extension.load_inline"] = (cpp_extension, "load_inline")
        for module in extra_modules:
            for name, value in vars(module).items():
                if callable(value) and not name.startswith("__"):
                    self.watched[f"{module.__name__}.{name}"] = (module, name)
        self.snapshot = {name: getattr(obj, attr, None) for name, (obj, attr) in self.watched.items()}
        self.settings = _precision_settings()
        # torch and Triton start helper threads of their own (profiler, extension builds); only threads that
        # run code loaded from a job's files (modules named ks_*) are the candidate's.
        self.threads = {t.ident for t in threading.enumerate()}

    def violations(self) -> list[str]:
        found = [f"replaced {name} (monkey-patching the harness)" for name, (obj, attr) in self.watched.items()
                 if getattr(obj, attr, None) is not self.snapshot[name]]
        settings = _precision_settings()
        found += [f"changed {k} from {self.settings[k]} to {v} (precision or backend setting)"
                  for k, v in settings.items() if v != self.settings[k]]
        started = [t for t in threading.enumerate() if t.ident not in self.threads and _runs_job_code(t)]
        if started:
            found.append(f"started {len(started)} thread(s) running its own code, still alive after the call")
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            if torch.cuda.current_stream() != torch.cuda.default_stream():
                found.append("left a non-default CUDA stream current")
        return found

    def restore_settings(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self.settings["torch.backends.cuda.matmul.allow_tf32"]
        torch.backends.cudnn.allow_tf32 = self.settings["torch.backends.cudnn.allow_tf32"]


def _runs_job_code(thread: threading.Thread) -> bool:
    target = getattr(thread, "_target", None) or thread.run
    module = getattr(target, "__module__", None) or getattr(getattr(target, "__func__", None), "__module__", "")
    return str(module).startswith("ks_")


def _precision_settings() -> dict[str, object]:
    return {
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction":
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction":
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
        "torch.get_default_dtype()": str(torch.get_default_dtype()),
    }
