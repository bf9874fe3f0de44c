"""Which GPU kernels a call ran, by name: a call into a load_inline module proves nothing by itself (it may
only call ATen from C++), so the first forward runs under the profiler and must show the candidate's own."""
from __future__ import annotations

import contextlib
import functools
import re

from ..errors import Found, Outcome, describe
from ..verdict import Status


def gpu_profiler():
    """A CUDA profiler for the first forward, or (a no-op context, why there is none)."""
    try:
        from torch.profiler import ProfilerActivity, profile
        return profile(activities=[ProfilerActivity.CUDA]), None
    except Exception as e:
        return contextlib.nullcontext(), f"no profiler, kernels not named: {describe(e)}"


def own_kernel_names(source: str) -> set[str]:
    """Kernel names the candidate's source defines: __global__ functions and @triton.jit functions."""
    own = set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?\w[\w:<>]*\s+(\w+)\s*\(", source))
    own |= set(re.findall(r"@triton\.(?:jit|autotune|heuristics)[\s\S]*?def\s+(\w+)", source))
    return own


def own_gpu_kernels(profiler, source: str) -> Found:
    """The kernels of the profiled call whose names the candidate defines; none of them means the GPU work was
    PyTorch's, and the candidate is rejected."""
    own = own_kernel_names(source)
    try:
        kernels = [e.name for e in profiler.events() if "CUDA" in str(e.device_type)]
    except Exception as e:
        return Found(GPU_KERNELS, None, warnings=[f"could not read the profiler: {describe(e)}"])
    mine = [k for k in kernels if any(name in k for name in own)]
    found = Found(GPU_KERNELS, {"own": sorted(set(mine)), "other": sorted(set(kernels) - set(mine))[:20]})
    if not mine:
        ran = ", ".join(sorted(set(kernels))[:6]) or "no kernels"
        found.outcome = Outcome(Status.REJECTED, f"forward ran none of the candidate's own GPU kernels (the GPU ran: "
                                                 f"{ran})")
    return found


GPU_KERNELS = "gpu_kernels"  # its name in the verdict's checks


# ---- where the time goes (for the search's feedback, not for the verdict) ------------------------------------
KERNEL_KEYS = {"candidate": "kernels", "eager": "eager_kernels", "compile": "compile_kernels"}  # Verdict.timing's
PROFILED_CALLS = 3  # calls profiled per function: the per-call average evens out one slow first launch...
PROFILED_ONCE_FROM_MS = 10.0  # ...but a call this long is profiled once: a slow launch is small beside it, and the
# profiler's cost grows with the kernels it records (L3 41_GRUBidirectional: 95 ms and thousands of cuDNN kernels a
# call; its timing step took 28.9 s on the H100, 2026-12-08, where its 15 interleaved rounds take about 5 s)

KERNELS_KEPT = 12  # rows per function in the verdict (the longest); a Level 3 model runs hundreds of kernels


def profiled_calls(median_ms: float | None) -> int:
    """How many calls of a function kernel_times profiles, from its timed median."""
    return 1 if median_ms is not None and median_ms >= PROFILED_ONCE_FROM_MS else PROFILED_CALLS


def kernel_times(fn, inputs: list, calls: int = PROFILED_CALLS) -> tuple[list[dict], set]:
    """Each GPU kernel (and copy) that `fn(*inputs)` runs: its name, milliseconds and launches per call, from the
    profiler over `calls` calls on a warm L2 (so its times are for proportions; the verdict's times are the
    interleaved, L2-flushed ones); and the CUDA streams they ran on (the profiler's ids). CUDA only."""
    import torch  # here, not above: the search reads KERNEL_KEYS from this module without torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn(*inputs)
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if "CUDA" in str(e.device_type)]
    streams = {e.device_resource_id for e in kernels if e.device_resource_id is not None}
    return kernel_table([(e.name, e.time_range.elapsed_us()) for e in kernels], calls), streams


def current_stream_id() -> int | None:
    """The profiler's id of the stream calls are made on (the one the timer's events time): one small kernel launched
    there in a profiling session of its own, where no candidate code runs. Asked once per stream, not per timed
    verification: a profiler session takes time, and a worker's stream stays the same. None where the profiler
    says nothing."""
    import torch
    return _stream_id(torch.cuda.current_device(), torch.cuda.current_stream().cuda_stream)


@functools.lru_cache(maxsize=8)
def _stream_id(device: int, stream: int) -> int | None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    marker = torch.zeros(1, device=device)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        marker.add_(1)
        torch.cuda.synchronize()
    ids = {e.device_resource_id for e in prof.events() if "CUDA" in str(e.device_type)}
    return ids.pop() if len(ids) == 1 else None


def kernel_table(events: list[tuple[str, float]], calls: int) -> list[dict]:
    """(name, microseconds) per kernel launch of `calls` calls -> rows per kernel name, the longest first:
    name (shortened), ms per call, launches per call; past KERNELS_KEPT, one row for the rest."""
    totals: dict[str, list[float]] = {}
    for name, us in events:
        row = totals.setdefault(short_kernel_name(name), [0.0, 0])
        row[0] += us
        row[1] += 1
    rows = [{"name": name, "ms": round(us / calls / 1e3, 6), "calls": max(1, round(n / calls))}
            for name, (us, n) in sorted(totals.items(), key=lambda kv: -kv[1][0])]
    if len(rows) > KERNELS_KEPT:
        rest = rows[KERNELS_KEPT - 1:]
        rows = rows[:KERNELS_KEPT - 1] + [{"name": f"{len(rest)} other kernels", "ms": round(
            sum(r["ms"] for r in rest), 6), "calls": sum(r["calls"] for r in rest)}]
    return rows


def short_kernel_name(name: str) -> str:
    """`void at::native::vectorized_elementwise_kernel<4, ...>(...)` -> `at::native::vectorized_elementwise_kernel`:
    C++ names carry their template arguments, hundreds of characters of them."""
    name = name.removeprefix("void ").strip()
    for stop in ("<", "("):
        if stop in name and not name.startswith(stop):
            name = name[:name.index(stop)]
    return name[:80]
