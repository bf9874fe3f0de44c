"""The chunked comparison at KernelBench's largest output sizes, on a GPU: time and peak extra GPU memory.

    PYTHONPATH=src python3 benchmarks/compare_at_scale.py [ROWS COLS]   (default 4096 393216: 19_ReLU, 6 GiB fp32)

Compares a correct output and one with a single wrong element, with the reference on the GPU and in pinned host
memory, and runs degenerate_reason; then the correct case again at other chunk sizes. One line each.
"""
from __future__ import annotations

import sys
import time

import torch

from kernelsearch.verify.harness import chunks
from kernelsearch.verify.harness.correctness import compare, degenerate_reason
from kernelsearch.verify.tolerance import resolve_tolerance


def measure(label: str, call) -> None:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    began = time.perf_counter()
    result = call()
    torch.cuda.synchronize()
    took = time.perf_counter() - began
    extra = (torch.cuda.max_memory_allocated() - before) / 2**30
    summary = result if isinstance(result, (str, type(None))) else (
        "ok" if result["ok"] else result["message"][:100])
    print(f"{label}: {took:.2f} s, peak extra GPU memory {extra:.2f} GiB; {summary}", flush=True)


def main() -> None:
    rows, cols = (int(x) for x in sys.argv[1:3]) if len(sys.argv) > 2 else (4096, 393216)
    tol = resolve_tolerance("kernelbench", "fp32")
    out = torch.rand(rows, cols, device="cuda")
    size = out.numel() * 4 / 2**30
    print(f"{torch.cuda.get_device_name()}, output {rows}x{cols} fp32 = {size:.1f} GiB", flush=True)
    host = torch.empty(out.shape, pin_memory=True)
    host.copy_(out)
    on_gpu = out.clone()
    measure("reference on GPU, correct", lambda: compare([out], [on_gpu], tol, device="cuda"))
    del on_gpu
    torch.cuda.empty_cache()
    measure("reference in pinned host memory, correct", lambda: compare([out], [host], tol, device="cuda"))
    out[rows // 2, cols - 1] += 1
    measure("reference in pinned host memory, one wrong", lambda: compare([out], [host], tol, device="cuda"))
    measure("degenerate_reason, two host references", lambda: degenerate_reason([[host], [host]], tol,
                                                                                device="cuda"))
    out[rows // 2, cols - 1] -= 1
    default = chunks.CHUNK_ELEMENTS
    for log2 in (20, 22, 24, 26):
        chunks.CHUNK_ELEMENTS = 1 << log2
        measure(f"chunk 2**{log2}, host reference, correct", lambda: compare([out], [host], tol, device="cuda"))
    chunks.CHUNK_ELEMENTS = default


if __name__ == "__main__":
    main()
