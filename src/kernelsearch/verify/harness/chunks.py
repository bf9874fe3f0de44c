"""Reading tensors a chunk at a time, so that comparing them needs O(chunk) extra memory, not O(tensor).

KernelBench's level 1 at its real sizes has outputs of 6-16 GiB (fp32): a whole-tensor float64 copy of one, with
the temporaries of a comparison, does not fit beside it on an 80 GB card.
"""
from __future__ import annotations

import math

import torch

# 2**24 elements: one float64 temporary of a chunk is 128 MiB and a chunk's comparison holds about ten at once.
# Measured on an H100 with 19_ReLU's 6 GiB fp32 output, reference in pinned host memory
# (benchmarks/compare_at_scale.py): 1.1 GiB of extra GPU memory and 0.56 s for a correct output; 2**26 took
# 0.52 s with 4.5 GiB, 2**22 0.77 s with 0.27 GiB, 2**20 2.65 s (per-chunk overhead). One wrong element: 1.6 GiB
# and 1.0 s (the mismatch report makes one more pass).
CHUNK_ELEMENTS = 1 << 24


def blocks(shape: tuple[int, ...]):
    """Consecutive blocks of a tensor of `shape` in row-major order, at most CHUNK_ELEMENTS each: (flat offset
    of the block's first element, the index that selects it). A block is a range along one dimension with every
    later dimension whole, so it holds whole rows unless one row is longer than a chunk (then a block lies
    within one row). Indexing a strided tensor with it copies at most the block."""
    limit = CHUNK_ELEMENTS

    def walk(dims: tuple[int, ...], prefix: tuple, offset: int):
        if math.prod(dims) <= limit:
            yield offset, prefix
            return
        inner = math.prod(dims[1:])
        if inner <= limit:
            step = limit // inner
            for start in range(0, dims[0], step):
                yield offset + start * inner, (*prefix, slice(start, min(start + step, dims[0])))
            return
        for i in range(dims[0]):
            yield from walk(dims[1:], (*prefix, i), offset + i * inner)

    yield from walk(tuple(shape), (), 0)


def pairs(out: torch.Tensor, ref: torch.Tensor):
    """(flat offset, output chunk, reference chunk) as flat tensors of their own dtype, the reference chunk moved
    to the output's device (a reference may wait in host memory while outputs are on the GPU: then its chunks come
    over through pinned buffers, the next one's copy overlapping this one's comparison)."""
    if out.device.type == "cuda" and ref.device.type == "cpu":
        yield from _staged_pairs(out, ref)
        return
    for offset, index in blocks(tuple(out.shape)):
        o = out[index].reshape(-1)
        if o.numel():
            yield offset, o, ref[index].reshape(-1).to(o.device)


def _staged_pairs(out: torch.Tensor, ref: torch.Tensor):
    """`pairs` for a host-held reference and a GPU output: each reference chunk is copied into one of two pinned
    buffers and from there to the GPU on a stream of its own, one chunk ahead of the comparison (a pageable copy
    of a chunk waits for the host; a pinned one runs beside the comparison's kernels)."""
    pieces = [(offset, index) for offset, index in blocks(tuple(out.shape)) if out[index].numel()]
    if not pieces:
        return
    copies = torch.cuda.Stream(out.device)
    largest = max(ref[index].numel() for _, index in pieces)
    pinned = [torch.empty(largest, dtype=ref.dtype, pin_memory=True) for _ in range(2)]
    copied = [None, None]  # per buffer: the event after its last copy to the GPU (it may be refilled after that)

    def send(k: int):
        index = pieces[k][1]
        host = ref[index].reshape(-1)
        buffer = pinned[k % 2][:host.numel()]
        if copied[k % 2] is not None:
            copied[k % 2].synchronize()
        buffer.copy_(host)
        with torch.cuda.stream(copies):
            on_gpu = buffer.to(out.device, non_blocking=True)
            copied[k % 2] = torch.cuda.Event()
            copied[k % 2].record(copies)
        return on_gpu, copied[k % 2]

    ahead = send(0)
    for k, (offset, index) in enumerate(pieces):
        chunk, arrived = ahead
        if k + 1 < len(pieces):
            ahead = send(k + 1)
        torch.cuda.current_stream(out.device).wait_event(arrived)
        chunk.record_stream(torch.cuda.current_stream(out.device))  # made on the copy stream, used on this one
        yield offset, out[index].reshape(-1), chunk


def in_chunks(t: torch.Tensor, device: torch.device | str | None = None):
    """`t`'s elements in row-major order, a chunk at a time, widened, on `device` (default: where `t` is)."""
    for _, index in blocks(tuple(t.shape)):
        piece = t[index].reshape(-1)
        if piece.numel():
            yield wide(piece.to(device) if device is not None else piece)


def wide(t: torch.Tensor) -> torch.Tensor:
    """float64 (complex128 for complex): where a comparison's arithmetic is exact enough for any input dtype."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)
