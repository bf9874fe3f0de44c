"""Where a timed kernel's time goes, for the next prompt (its times against eager PyTorch and torch.compile are in
the verdict's report and the kernel's summary already): the bandwidth and FLOP rate it reached against the GPU's
peaks (its fraction of the roofline), its kernels and the baselines' kernels, and what bounds it: memory, compute
or launches. The next strategy answers that bound (strategies.choose)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..verify.harness.gpu_kernels import KERNEL_KEYS
from ..verify.verdict import Verdict

# A kernel launch from Python costs ~5-20 us on an H100 (Triton's launcher ~10 us): where the launches alone
# would take half the measured time, launches are what bounds it, not the roofline (one launch cannot be cut).
LAUNCH_MS = 0.01
LAUNCH_SHARE = 0.5
MAX_KERNELS_SHOWN = 6
NEAR_ROOFLINE = 0.7  # well-tuned memory-bound kernels reach 80-90 % of the H100's bandwidth
NEXT_STEP = {  # what answers each bound; the strategies that do are tagged with it in strategies.toml
    "memory": "its bytes, not its FLOPs, set the roofline's floor: fewer passes over memory, wider coalesced "
              "access, fuse the ops so that intermediates never reach global memory",
    "compute": "its FLOPs, not its bytes, set the roofline's floor: tensor cores at a precision the tolerance "
               "allows, tiles that reuse data",
    "launch": "kernel launches take most of the time: fewer kernels (fuse them), no PyTorch ops left in forward",
}


@dataclass
class Performance:
    bound: str | None  # memory, compute, launch; None when it cannot be told
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(["Where the time goes:", *(f"- {line}" for line in self.lines)]) if self.lines else ""


def performance(verdict: Verdict | None, dtype: str) -> Performance | None:
    """The timing of a correct kernel, read; None without a GPU timing (on the CPU nothing is timed)."""
    timed = verdict.timed if verdict is not None and verdict.ok else None
    if timed is None:
        return None
    timing, median, lines = verdict.timing, timed.candidate_ms, []
    roofline = verdict.checks.get("roofline") or {}
    flops, moved = roofline.get("flops"), roofline.get("bytes")
    peaks = _peaks(verdict.device, dtype, roofline)
    memory_ms = compute_ms = None
    if peaks and moved is not None and flops is not None:
        memory_ms, compute_ms = 1e3 * moved / peaks["bandwidth"], 1e3 * flops / peaks[dtype]
        floor = max(memory_ms, compute_ms)
        rate = (f"{moved / median / 1e6:.4g} GB/s of the {peaks['bandwidth'] / 1e9:.4g} GB/s peak "
                f"({_pct(memory_ms / median)})")
        if flops:
            rate += (f", {flops / median / 1e9:.4g} TFLOP/s of the {peaks[dtype] / 1e12:.4g} TFLOP/s peak "
                     f"({_pct(compute_ms / median)})")
        lines.append(f"reached {rate}: {_pct(floor / median)} of the roofline (its floor: {floor:.3g} ms for "
                     f"{moved / 1e6:.4g} MB and {flops / 1e9:.4g} GFLOP)")
        if floor / median >= NEAR_ROOFLINE:
            lines.append("close to the roofline: only doing less work or moving fewer bytes can still pay")
    launches = _launches(verdict)
    lines.extend(_kernel_lines(verdict, timing, launches))
    bound = None
    if timed.launch_bound():
        lines.append(f"the host takes {timed.host_ms['candidate']:.3g} ms to launch one call, longer than its "
                     f"{median:.3g} ms on the GPU: called in a loop it runs at the host's pace")
        bound = "launch"
    elif "candidate" not in timed.host_ms and launches > 1 and launches * LAUNCH_MS >= LAUNCH_SHARE * median:
        bound = "launch"  # a verdict from before launch times were measured
    elif memory_ms is not None:
        bound = "memory" if memory_ms >= compute_ms else "compute"
    if bound:
        lines.append(f"{bound}-bound: {NEXT_STEP[bound]}")
    return Performance(bound, lines)


def _peaks(device: str, dtype: str, roofline: dict) -> dict | None:
    """The GPU's peak rates: from the verdict where the worker put them there (peak_bandwidth in B/s, peak_flops
    for the run's dtype), else verify.harness.gpu_timing's table (which imports torch: only a GPU verdict gets here)."""
    if "peak_bandwidth" in roofline and "peak_flops" in roofline:
        return {"bandwidth": roofline["peak_bandwidth"], dtype: roofline["peak_flops"]}
    if not device or device == "cpu":
        return None
    # torch stays out of the search's process unless a GPU verdict gets here
    from ..verify.harness.gpu_timing import PEAKS
    return next((p for name, p in PEAKS.items() if name in device), None)


def _launches(verdict: Verdict) -> int:
    """Kernels one forward launches: the candidate's own and each compute op it left to PyTorch."""
    kernels = (verdict.timing or {}).get(KERNEL_KEYS["candidate"])
    if kernels:
        return sum(k.get("calls", 1) for k in kernels)
    return verdict.kernel_launches + len(verdict.pytorch_ops)


def _kernel_lines(verdict: Verdict, timing: dict, launches: int) -> list[str]:
    """Each kernel with its time where the verdict has them (verify.harness.gpu_kernels.kernel_times: name, ms, calls),
    else the names the first forward's profiler saw."""
    lines = []
    if timing.get(KERNEL_KEYS["candidate"]):
        lines.append("your kernels: " + _kernels(timing[KERNEL_KEYS["candidate"]]))
    else:
        own = (verdict.checks.get("gpu_kernels") or {}).get("own") or []
        named = f": {', '.join(own[:MAX_KERNELS_SHOWN])}" if own else ""
        lines.append(f"{launches} launch{'es' if launches != 1 else ''} per forward{named}"
                     + (f" (with PyTorch's {', '.join(verdict.pytorch_ops)})" if verdict.pytorch_ops else ""))
    for baseline, label in (("eager", "eager PyTorch runs"), ("compile", "torch.compile runs")):
        if timing.get(KERNEL_KEYS[baseline]):
            lines.append(f"{label}: {_kernels(timing[KERNEL_KEYS[baseline]])}")
    return lines


def _kernels(rows: list[dict]) -> str:
    ordered = sorted(rows, key=lambda k: -k.get("ms", 0.0))
    shown = [f"{k['name'][:60]} {k['ms']:.3g} ms" + (f" ({k['calls']} calls)" if k.get("calls", 1) > 1 else "")
             for k in ordered[:MAX_KERNELS_SHOWN]]
    return ", ".join(shown) + (f" and {len(rows) - MAX_KERNELS_SHOWN} more" if len(rows) > MAX_KERNELS_SHOWN else "")


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2g} %" if fraction < 0.1 else f"{100 * fraction:.0f} %"
