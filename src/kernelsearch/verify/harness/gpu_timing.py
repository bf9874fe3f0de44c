"""GPU timing: the candidate and its baselines interleaved in one window on the same rotated inputs, after the
clocks have ramped up. Each call is timed on the GPU alone: the GPU is kept busy by a spin kernel while the host
launches the call, so that the events around it measure its kernels back to back, with no gap for the host; the
host's launch time is measured apart, and a call whose launch takes longer than its GPU work is launch-bound.
Medians, and speedups with a bootstrap interval."""
from __future__ import annotations

import functools
import math
import random
import statistics
import time
from dataclasses import dataclass

import torch

from .memory import tensor_bytes

L2_FLUSH_BYTES = 256 * 1024 * 1024  # KernelBench's flush size; H100 L2 is 50 MB, H200 60 MB.
# An idle H100 sits at ~345-405 MHz and ramps up under load: a candidate timed right after idling ran up to 49 %
# slower than the same kernel a moment later. Busy the GPU this long before the first timed call.
WARMUP_S = 0.25
MIN_ROUNDS = 15  # each round times every function once, in a shuffled order
MAX_ROUNDS = 2000
MIN_S = 0.5  # rounds continue at least this long, then until every median is known within NARROW (95 %)...
BUDGET_S = 1.5  # ...or this much wall time has passed
NARROW = 0.01
BOOTSTRAP_SAMPLES = 400
# The spin before each call lasts PAD_FACTOR times the host's launch time (measured in the warm-up), so that the
# GPU is still busy when the launch is done: Python-launched kernels of 25-60 us were timed as launch overhead and
# host noise without it (the same kernel 1.85x, then 1.43x eager, in two verifications).
PAD_FACTOR = 1.5
PAD_MS = (0.02, 20.0)  # at least, at most: a launch of over 13 ms is launch-bound whatever the spin

# Dense peak rates (FLOP/s by math dtype) and memory bandwidth (B/s), from the vendors' datasheets. Used to flag
# a time below the physical floor and for the search's roofline fractions (search/feedback.py), so the rates are
# the highest the chip can do (tensor cores; fp32's is TF32's, which 3xTF32 reaches a third of).
PEAKS = {
    "H100": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 3.35e12},
    "H200": {"fp32": 494e12, "fp16": 989e12, "bf16": 989e12, "bandwidth": 4.8e12},
    "A100": {"fp32": 156e12, "fp16": 312e12, "bf16": 312e12, "bandwidth": 2.0e12},
}
METHOD = ("CUDA events around each call on the GPU kept busy while the host launches it (GPU time; the launch's "
          "host time apart), L2 flushed before each call, interleaved with the baselines")


@dataclass
class Samples:
    """One function's timed calls: GPU milliseconds (events around the call) and the host's milliseconds to launch
    it, call by call."""
    gpu: list[float]
    host: list[float]


def time_interleaved(fns: dict, input_sets: list[list], *, budget_s: float = BUDGET_S, min_s: float = MIN_S,
                     min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS, seed: int = 0) -> dict:
    """Time each `fn(*inputs)` of `fns` (name -> callable), round by round in a shuffled order, so that clock and
    thermal drift hit all of them alike; inputs rotate among the sets, the same set for every function in a round.
    Returns name -> Samples. A function's exception propagates with the function's name in `exc.timed_name`."""
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    names = list(fns)
    order = random.Random(seed)
    samples = {name: Samples([], []) for name in names}
    events = {name: (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for name in names}

    def call(name, inputs) -> float:
        """The call's host milliseconds (its launch: the GPU is still busy when it returns)."""
        began = time.perf_counter()
        try:
            fns[name](*inputs)
        except Exception as e:
            e.timed_name = name
            raise
        return 1e3 * (time.perf_counter() - began)

    launches: dict[str, list[float]] = {name: [] for name in names}
    began = time.perf_counter()
    while time.perf_counter() - began < WARMUP_S or not all(launches.values()):  # clocks up, caches warm
        for k, name in enumerate(names):
            launches[name].append(call(name, input_sets[k % len(input_sets)]))
        torch.cuda.synchronize()
    per_ms = spin_cycles_per_ms()
    pad = {name: int(per_ms * min(PAD_MS[1], max(PAD_MS[0], PAD_FACTOR * statistics.median(launches[name]))))
           for name in names}
    began = time.perf_counter()
    for r in range(max_rounds):
        spent = time.perf_counter() - began
        if r >= min_rounds and (spent > budget_s or (spent > min_s and all(narrow(samples[n].gpu) for n in names))):
            break
        inputs = input_sets[r % len(input_sets)]
        order.shuffle(names)
        for name in names:
            start, end = events[name]
            flush.zero_()
            torch.cuda._sleep(pad[name])
            start.record()
            samples[name].host.append(call(name, inputs))
            end.record()
        torch.cuda.synchronize()
        for name in names:
            samples[name].gpu.append(events[name][0].elapsed_time(events[name][1]))
    del flush
    return samples


@functools.cache
def spin_cycles_per_ms() -> float:
    """Cycles of torch.cuda._sleep per millisecond on this GPU, measured once (after the warm-up: clocks up)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(1000)
    start.record()
    torch.cuda._sleep(1_000_000)
    end.record()
    end.synchronize()
    return 1_000_000 / max(start.elapsed_time(end), 1e-3)


def narrow(times: list[float], within: float = NARROW) -> bool:
    """Whether the median of `times` is known within +-`within` (its 95 % interval from order statistics)."""
    n = len(times)
    if n < 10:
        return False
    ordered, half = sorted(times), 1.96 * math.sqrt(n) / 2
    low, high = ordered[max(0, math.floor(n / 2 - half))], ordered[min(n - 1, math.ceil(n / 2 + half))]
    middle = statistics.median(ordered)
    return middle > 0 and (high - low) / 2 <= within * middle


def summarize(samples: Samples) -> dict:
    """A function's timing for the verdict: GPU milliseconds (median, mean, min, 20th and 80th percentiles, calls)
    and the host's median launch time; `launch_bound` where the launch takes longer than the GPU work (a loop of
    such calls runs at the host's pace, not the GPU's)."""
    times, ordered = samples.gpu, sorted(samples.gpu)
    host = statistics.median(samples.host)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "min_ms": ordered[0],
            "p20_ms": ordered[len(ordered) // 5], "p80_ms": ordered[(4 * len(ordered)) // 5], "reps": len(times),
            "host_ms": host, "launch_bound": host > statistics.median(times)}


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

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(*inputs)
    outputs = out if isinstance(out, (tuple, list)) else [out]
    return float(counter.get_total_flops()), tensor_bytes(inputs) + tensor_bytes(outputs) + tensor_bytes(
        model.parameters())


def roofline_floor_ms(flops: float, bytes_moved: float, dtype: str, device_name: str,
                      measured: dict | None = None) -> float | None:
    """The least time the work can take on this device (max of compute and memory time) at its peaks (peaks_of),
    or None where none are known."""
    peaks = peaks_of(device_name, measured)
    if peaks is None:
        return None
    return 1e3 * max(flops / peaks[dtype], bytes_moved / peaks["bandwidth"])


def peaks_of(device_name: str, measured: dict | None = None) -> dict | None:
    """The device's peak rates: its row of PEAKS (by a name such as "NVIDIA H100 80GB HBM3"), raised to what it
    was `measured` at with a margin (measured_peaks), or the measured alone for a device the table lacks; None
    with neither."""
    sheet = next((p for name, p in PEAKS.items() if name in device_name), None)
    if measured is None:
        return sheet
    seen = {"bandwidth": MEASURED_MARGIN * measured["bandwidth"],
            **{dtype: MEASURED_MARGIN * measured["flops"] for dtype in ("fp32", "fp16", "bf16")}}
    return {k: max(v, sheet[k]) for k, v in seen.items()} if sheet else seen


# A measured peak counts this much over what was measured (a kernel may beat our copy and our matrix product).
MEASURED_MARGIN = 1.1
PEAK_COPY_BYTES = 1 << 29  # 512 MiB: far past any L2
PEAK_MATMUL = 4096  # bf16 n^3 product: 137 GFLOP, a fraction of a millisecond on a Hopper GPU


@functools.cache
def measured_peaks() -> dict:
    """This GPU's copy bandwidth (bytes read and written per second, device to device) and bf16 matrix rate
    (FLOP/s), the best of a few tries, measured once per process: ceilings for a device the datasheet table lacks,
    and a check on it. (A bf16 rate stands for every dtype: fp32 work on tensor cores runs at most at TF32's half
    of it.)"""
    source = torch.empty(PEAK_COPY_BYTES, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    a = torch.randn(PEAK_MATMUL, PEAK_MATMUL, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)

    def best_ms(fn) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        fn()
        times = []
        for _ in range(5):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return min(times)

    copy_ms = best_ms(lambda: target.copy_(source))
    matmul_ms = best_ms(lambda: a @ b)
    return {"bandwidth": 2 * PEAK_COPY_BYTES / (copy_ms / 1e3), "flops": 2 * PEAK_MATMUL ** 3 / (matmul_ms / 1e3)}
