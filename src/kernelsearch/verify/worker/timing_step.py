"""A job's timing step: the candidate, eager PyTorch and torch.compile timed in one interleaved window on the
same unseen inputs, then a last correctness check on fresh inputs, and the roofline sanity floor."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from ..errors import Found, Outcome, describe
from ..harness.gpu_kernels import KERNEL_KEYS, current_stream_id, kernel_times, profiled_calls
from ..harness.gpu_timing import (METHOD, measured_peaks, peaks_of, roofline_floor_ms, speedup, summarize,
                                  time_interleaved, work_of_call)
from ..verdict import FRESH_SEED, TIMING_SEED, Status

COMPILED_KEPT = 2  # torch.compile'd references kept per worker (a search times one problem again and again)


class CompiledBaselines:
    """torch.compile of each problem's reference, compiled once per worker: compiling takes seconds to minutes,
    timing it again takes a second. The compiled model holds its own parameters (the same seed's values)."""

    def __init__(self):
        self.entries: OrderedDict[str, object] = OrderedDict()

    def get(self, key: str, reference, sample_inputs):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        try:
            compiled = in_default_stance(torch.compile(reference))
            with torch.no_grad():
                compiled(*sample_inputs)  # compile now, outside the timed window
            torch.cuda.synchronize()
        except Exception as e:
            compiled = f"unavailable: {describe(e).splitlines()[0][:300]}"
        self.entries[key] = compiled
        while len(self.entries) > COMPILED_KEPT:
            self.entries.popitem(last=False)
        return compiled


def in_default_stance(compiled):
    """The compiled baseline, run in torch.compile's default stance whatever a candidate set: under
    set_stance("force_eager") it would run as eager PyTorch, and the candidate's ×compile would be against eager.
    (The static checks refuse torch.compiler but for its questions; this holds for a call they cannot see.)"""
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is None:  # a torch before 2.6 has no stances
        return compiled

    def call(*inputs):
        with set_stance("default"):
            return compiled(*inputs)
    return call


@dataclass
class Timed:
    """What the timing step found: the verdict's timing, and its checks in the order they ran (the kernels' streams,
    the fresh inputs, the roofline); it stops at the first with an outcome."""
    timing: dict
    found: list[Found] = field(default_factory=list)


def time_candidate(job, problem, reference, model_new, beside: bool = False) -> Timed:
    """`beside`: the job could not have its GPU alone (gpu_share.py) and is timed beside another job."""
    req = job.req
    sets = [job.calls.inputs(problem, req.seed + TIMING_SEED + k) for k in range(job.plan.timing_sets)]  # never seen
    compiled = job.w.compiled.get(job.baseline_key(problem), reference, sets[0])  # built before the candidate
    fns = {"candidate": model_new, "eager": reference}
    if callable(compiled):
        fns["compile"] = compiled
    with torch.no_grad():
        samples = _time(job, fns, sets)
    flops, bytes_moved = work_of_call(reference, sets[0])
    if "compile" not in samples:
        compiled = compiled if isinstance(compiled, str) else "unavailable: it failed while being timed"
    new = samples["candidate"].gpu
    timed = Timed({"candidate": summarize(samples["candidate"]),
                   "method": f"{METHOD}; {len(sets)} input set(s)" + ("; beside another job on the GPU (its wait "
                                                                        "to run alone ran out)" if beside else "")})
    for name in ("eager", "compile"):
        if name in samples:
            point, low, high = speedup(samples[name].gpu, new)
            timed.timing[name] = summarize(samples[name])
            timed.timing[f"speedup_vs_{name}"] = round(point, 4)
            timed.timing[f"speedup_vs_{name}_ci"] = [round(low, 4), round(high, 4)]
        else:
            timed.timing[name] = compiled
    with torch.no_grad(), job.clock("kernel_profile"):
        timed.found.append(_profile_kernels(timed.timing, {name: fns[name] for name in samples}, sets[0]))
    if timed.found[-1].outcome:
        return timed
    job.check_integrity()
    del sets  # up to 4 input sets: 34 GiB on 38_L1Norm, which the check below needs room for

    # Re-check on inputs the candidate has not seen, after it ran many times: catches cached results.
    with job.clock("fresh_check"):
        result = job.call_and_judge(model_new, problem, req.seed + FRESH_SEED, "fresh")
    timed.found.append(Found("fresh_inputs_after_timing", {"ok": result["ok"], "max_abs_err": result["max_abs_err"]}))
    if not result["ok"]:
        timed.found[-1].outcome = Outcome(Status.INCORRECT, "wrong on fresh inputs after timing (results cached?): "
                                                            f"{result['message']}")
        return timed
    floor = judge_floor(job.w.info["device_name"], req.dtype, timed.timing["candidate"]["median_ms"], flops,
                        bytes_moved, measured_peaks())
    if floor is not None:
        timed.found.append(floor)
    return timed


def judge_floor(device: str, dtype: str, median: float, flops: float, bytes_moved: int,
                measured: dict | None) -> Found | None:
    """The roofline: the least time this GPU needs for the problem's FLOPs and bytes at its peaks (the datasheet's,
    raised to what it was measured at). A candidate timed under it is not fast but `suspicious` (work skipped,
    results cached, work the timer did not see): the search does not keep it and fast_p does not count it. None
    where no peaks are known."""
    peaks = peaks_of(device, measured)
    if peaks is None:
        return None
    floor = roofline_floor_ms(flops, bytes_moved, dtype, device, measured)
    found = Found("roofline", {"floor_ms": floor, "flops": flops, "bytes": bytes_moved,
                               "peak_bandwidth": peaks["bandwidth"], "peak_flops": peaks[dtype],
                               "note": f"{floor / median:.1%} of the roofline (floor {floor:.3g} ms)"})
    if measured:
        found.entry["measured"] = {k: float(f"{x:.4g}") for k, x in measured.items()}
    if median < floor:
        found.outcome = Outcome(Status.SUSPICIOUS, (
            f"{median:.4g} ms is under the {floor:.4g} ms this GPU needs at its peaks for the problem's "
            f"{flops:.3g} FLOPs ({peaks[dtype] / 1e12:.4g} TFLOP/s) and {bytes_moved / 1e6:.4g} MB "
            f"({peaks['bandwidth'] / 1e9:.4g} GB/s): not a speed it can reach (skipped work, cached results, or "
            "work the timer does not see)"))
    return found


def _profile_kernels(timing: dict, fns: dict, inputs: list) -> Found:
    """Each timed function's kernels with their times (gpu_kernels.kernel_times) into the timing, for the search's
    feedback on where the time goes; a profiler that fails costs the breakdown, never the verdict. The events time
    the stream the call is made on: a candidate whose kernels run on another (work the events do not see) is
    rejected, unless the reference's own kernels ran there too (cuDNN's RNNs run each layer and direction on
    streams of their own, joined back to the caller's: L3 41_GRUBidirectional's eager kernels ran on 12 such
    streams and none on the caller's, H100, 2026-12-07)."""
    found, streams = Found("kernel_streams", None), {}
    for name, fn in fns.items():
        try:
            timing[KERNEL_KEYS[name]], streams[name] = kernel_times(fn, inputs,
                                                                   profiled_calls(timing[name].get("median_ms")))
        except Exception as e:
            timing["kernels_unavailable"] = describe(e).splitlines()[0][:200]
            return found
    try:
        current = current_stream_id()
    except Exception:  # the reference's streams alone, as before there was a marker
        current = None
    elsewhere = side_streams(streams["candidate"], current, streams.get("eager", set()) | streams.get("compile", set()))
    if elsewhere:
        found.outcome = Outcome(Status.REJECTED, f"its kernels ran on CUDA stream(s) {sorted(elsewhere)}, not the "
                                                 f"stream timed ({current}) nor one the reference's own kernels ran on "
                                                 "(side-stream work the timer does not see)")
    return found


def side_streams(candidate: set, current: int | None, reference: set) -> set:
    """The candidate's streams that are neither the one timed nor one the reference itself used. With neither
    known (the profiler said nothing), nothing is judged."""
    allowed = reference | ({current} if current is not None else set())
    return candidate - allowed if allowed else set()


def _time(job, fns: dict, sets: list) -> dict:
    """The interleaved window; a baseline that fails inside it is dropped and the window run again."""
    while True:
        try:
            return time_interleaved(fns, sets)
        except Exception as e:
            name = getattr(e, "timed_name", "candidate")
            if name == "candidate" or name not in fns:
                raise job.calls.fail(e, "timing") from None
            del fns[name]
