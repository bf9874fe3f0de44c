"""Which GPU kernels a call ran, by name: a call into a load_inline module proves nothing by itself (it may
only call ATen from C++), so the first forward runs under the profiler and must show the candidate's own."""
from __future__ import annotations

import contextlib
import re

from .errors import Outcome, describe


def gpu_profiler(v):
    try:
        from torch.profiler import ProfilerActivity, profile
        return profile(activities=[ProfilerActivity.CUDA])
    except Exception as e:
        v.warnings.append(f"no profiler, kernels not named: {describe(e)}")
        return contextlib.nullcontext()


def own_kernel_names(source: str) -> set[str]:
    """Kernel names the candidate's source defines: __global__ functions and @triton.jit functions."""
    own = set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?\w[\w:<>]*\s+(\w+)\s*\(", source))
    own |= set(re.findall(r"@triton\.(?:jit|autotune|heuristics)[\s\S]*?def\s+(\w+)", source))
    return own


def count_own_gpu_kernels(v, profiler, source: str) -> int:
    """Kernels of the profiled call whose names the candidate defines; none of them means the GPU work was
    PyTorch's, and the candidate is rejected."""
    own = own_kernel_names(source)
    try:
        kernels = [e.name for e in profiler.events() if "CUDA" in str(e.device_type)]
    except Exception as e:
        v.warnings.append(f"could not read the profiler: {describe(e)}")
        return 0
    mine = [k for k in kernels if any(name in k for name in own)]
    v.checks["gpu_kernels"] = {"own": sorted(set(mine)), "other": sorted(set(kernels) - set(mine))[:20]}
    if not mine:
        ran = ", ".join(sorted(set(kernels))[:6]) or "no kernels"
        raise Outcome("rejected", f"forward ran none of the candidate's own GPU kernels (the GPU ran: {ran})")
    return len(mine)
