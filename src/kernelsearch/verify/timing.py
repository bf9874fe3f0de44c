"""GPU timing: CUDA events, device-wide sync, L2 flush, rotated inputs, medians; and a roofline sanity floor."""
from __future__ import annotations

import statistics
import time

import torch

L2_FLUSH_BYTES = 256 * 1024 * 1024  # KernelBench's flush size; H100 L2 is 50 MB, H200 60 MB.

# Dense peak rates (FLOP/s by math dtype) and memory bandwidth (B/s), from the vendors' datasheets. Used only
# to flag a time below the physical floor, so the rates are the highest the chip can do (tensor cores).
PEAKS = {
    "H100": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 3.35e12},
    "H200": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 4.8e12},
    "A100": {"fp32": 156e12, "fp16": 312e12, "bf16": 312e12, "bandwidth": 2.0e12},
}


def time_cuda(fn, input_sets: list[list], *, warmup: int = 3, min_reps: int = 20, max_reps: int = 200,
              budget_s: float = 1.0) -> dict:
    """Time `fn(*inputs)` with CUDA events. A device-wide synchronize precedes the end event, so work on
    other streams is counted; the L2 is flushed before every repetition; inputs rotate among the sets."""
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    for i in range(warmup):
        fn(*input_sets[i % len(input_sets)])
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - began < budget_s):
        inputs = input_sets[len(times) % len(input_sets)]
        flush.zero_()
        start.record()
        fn(*inputs)
        torch.cuda.synchronize()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    del flush
    ordered = sorted(times)
    return {
        "median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "min_ms": ordered[0],
        "p20_ms": ordered[len(ordered) // 5], "p80_ms": ordered[(4 * len(ordered)) // 5], "reps": len(times),
    }


def roofline_floor_ms(flops: float, bytes_moved: float, dtype: str, device_name: str) -> float | None:
    """The least time the work can take on this device (max of compute and memory time), or None if the
    device is not in PEAKS."""
    peaks = next((p for name, p in PEAKS.items() if name in device_name), None)
    if peaks is None:
        return None
    return 1e3 * max(flops / peaks[dtype], bytes_moved / peaks["bandwidth"])
