"""GPU timing: the candidate and its baselines interleaved in one window on the same rotated inputs, after the
clocks have ramped up; CUDA events with a device-wide sync; medians, and speedups with a bootstrap interval."""
from __future__ import annotations

import random
import statistics
import time

import torch

L2_FLUSH_BYTES = 256 * 1024 * 1024  # KernelBench's flush size; H100 L2 is 50 MB, H200 60 MB.
# An idle H100 sits at ~345-405 MHz and ramps up under load: a candidate timed right after idling ran up to 49 %
# slower than the same kernel a moment later. Busy the GPU this long before the first timed call.
WARMUP_S = 0.25
MIN_ROUNDS = 15  # each round times every function once, in a shuffled order
MAX_ROUNDS = 400
BUDGET_S = 1.5  # rounds continue until this much wall time has passed (and MIN_ROUNDS are done)
BOOTSTRAP_SAMPLES = 400

# Dense peak rates (FLOP/s by math dtype) and memory bandwidth (B/s), from the vendors' datasheets. Used to flag
# a time below the physical floor and for the search's roofline fractions (search/feedback.py), so the rates are
# the highest the chip can do (tensor cores; fp32's is TF32's, which 3xTF32 reaches a third of).
PEAKS = {
    "H100": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 3.35e12},
    "H200": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 4.8e12},
    "A100": {"fp32": 156e12, "fp16": 312e12, "bf16": 312e12, "bandwidth": 2.0e12},
}


def time_interleaved(fns: dict, input_sets: list[list], *, budget_s: float = BUDGET_S,
                     min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS, seed: int = 0) -> dict:
    """Time each `fn(*inputs)` of `fns` (name -> callable) with CUDA events, round by round in a shuffled order,
    so that clock and thermal drift hit all of them alike. A device-wide synchronize precedes the end event, so
    work on other streams is counted; the L2 is flushed before every call; inputs rotate among the sets, the
    same set for every function in a round. Returns name -> list of milliseconds. A function's exception
    propagates with the function's name in `exc.timed_name`."""
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    names = list(fns)
    order = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in names}
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def call(name, inputs):
        try:
            fns[name](*inputs)
        except Exception as e:
            e.timed_name = name
            raise

    began = time.perf_counter()
    while time.perf_counter() - began < WARMUP_S:  # clocks up, caches of every function warm
        for k, name in enumerate(names):
            call(name, input_sets[k % len(input_sets)])
        torch.cuda.synchronize()
    began = time.perf_counter()
    for r in range(max_rounds):
        if r >= min_rounds and time.perf_counter() - began > budget_s:
            break
        inputs = input_sets[r % len(input_sets)]
        order.shuffle(names)
        for name in names:
            flush.zero_()
            start.record()
            call(name, inputs)
            torch.cuda.synchronize()
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end))
    del flush
    return samples


def summarize(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "min_ms": ordered[0],
            "p20_ms": ordered[len(ordered) // 5], "p80_ms": ordered[(4 * len(ordered)) // 5], "reps": len(times)}


def speedup(base: list[float], new: list[float], seed: int = 0) -> tuple[float, float, float]:
    """median(base) / median(new), with a 95 % bootstrap interval (both samples resampled)."""
    point = statistics.median(base) / statistics.median(new)
    rng = random.Random(seed)
    ratios = sorted(statistics.median(rng.choices(base, k=len(base))) /
                    statistics.median(rng.choices(new, k=len(new))) for _ in range(BOOTSTRAP_SAMPLES))
    return point, ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def work_of_call(model, inputs: list) -> tuple[float, int]:
    """What one call of `model` must do: (FLOPs, as torch's FlopCounterMode counts them; bytes: inputs, outputs
    and parameters, each moved once). The two numbers a roofline floor is made of."""
    from torch.utils.flop_counter import FlopCounterMode

    from .memory import tensor_bytes

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(*inputs)
    outputs = out if isinstance(out, (tuple, list)) else [out]
    return float(counter.get_total_flops()), tensor_bytes(inputs) + tensor_bytes(outputs) + tensor_bytes(
        model.parameters())


def roofline_floor_ms(flops: float, bytes_moved: float, dtype: str, device_name: str) -> float | None:
    """The least time the work can take on this device (max of compute and memory time), or None if the
    device is not in PEAKS."""
    peaks = peaks_of(device_name)
    if peaks is None:
        return None
    return 1e3 * max(flops / peaks[dtype], bytes_moved / peaks["bandwidth"])


def peaks_of(device_name: str) -> dict | None:
    """The device's row of PEAKS (by a name such as "NVIDIA H100 80GB HBM3"), or None."""
    return next((p for name, p in PEAKS.items() if name in device_name), None)
